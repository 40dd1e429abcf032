// What the server's answers mean for the envelopes that follow: rate limits per data category (X-Sentry-Rate-Limits,
// Retry-After) as deadlines, and the backoff after failed sends. The rules are the Python SDK's (delivery.py).

// When a 429 names no duration at all, as the Sentry SDKs do.
export const DEFAULT_RETRY_AFTER = 60;
// A server's Retry-After is honoured up to this long; a bigger value is more likely a mistake than a plan.
export const MAX_RETRY_AFTER = 3600;

/** @typedef {{ status: number, retryAfter: string | undefined, rateLimits: string | undefined }} Answer */

/**
 * `Retry-After` as seconds (a number of seconds or an HTTP date), capped; undefined when absent or unreadable.
 * @param {string | undefined} value
 * @param {number} [now] epoch milliseconds
 * @returns {number | undefined}
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text), MAX_RETRY_AFTER);
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return Math.min(Math.max((when - now) / 1000, 0), MAX_RETRY_AFTER);
}

/**
 * `X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>[:<reason>[:<namespaces>]], ...` as (category, seconds)
 * pairs; the category `null` stands for every category (an empty list).
 * @param {string} header
 * @returns {Array<[string | null, number]>}
 */
export function parseRateLimits(header) {
  /** @type {Array<[string | null, number]>} */
  const limits = [];
  for (const limit of header.split(',')) {
    const [seconds, categories = '', , , namespaces] = limit.trim().split(':', 5);
    if (!limit.trim()) continue;
    const parsed = Number.parseFloat(seconds);
    const delay = Number.isFinite(parsed) ? parsed : DEFAULT_RETRY_AFTER;
    if (!categories) {
      limits.push([null, delay]);
      continue;
    }
    for (const category of categories.split(';')) {
      // metric_bucket limits apply to custom metrics only, when they name namespaces.
      if (category === 'metric_bucket' && namespaces && !namespaces.split(';').includes('custom')) continue;
      if (category) limits.push([category, delay]);
    }
  }
  return limits;
}

/** Per-category "do not send before" deadlines on the monotonic clock; the null category holds back everything. */
export class RateLimits {
  /** @param {() => number} [clock] monotonic seconds */
  constructor(clock = () => performance.now() / 1000) {
    this.clock = clock;
    /** @type {Map<string | null, number>} */
    this.until = new Map();
  }

  /**
   * Apply an answer's headers. X-Sentry-Rate-Limits is honoured on every status, as the protocol says; a 429
   * without it holds back every category for its Retry-After (else 60 s).
   * @param {Answer} answer
   */
  update(answer) {
    if (answer.rateLimits) {
      for (const [category, seconds] of parseRateLimits(answer.rateLimits)) this.extend(category, seconds);
    } else if (answer.status === 429) {
      this.extend(null, parseRetryAfter(answer.retryAfter) ?? DEFAULT_RETRY_AFTER);
    }
  }

  /**
   * @param {string | null} category
   * @param {number} seconds
   */
  extend(category, seconds) {
    const deadline = this.clock() + Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER);
    if (deadline > (this.until.get(category) ?? 0)) this.until.set(category, deadline);
  }

  /**
   * Seconds until `category` may be sent again (0 when it may be sent now).
   * @param {string} category
   */
  remaining(category) {
    const deadline = Math.max(this.until.get(category) ?? 0, this.until.get(null) ?? 0);
    return deadline ? Math.max(0, deadline - this.clock()) : 0;
  }

  /**
   * Seconds until every one of `categories` may be sent again.
   * @param {Iterable<string>} categories
   */
  blocked(categories) {
    let most = -1;
    for (const category of categories) most = Math.max(most, this.remaining(category));
    return most < 0 ? this.remaining('default') : most;
  }
}

/** Exponential backoff with jitter: `base · 2ⁿ` capped at `cap`, each delay drawn from ½–1 of that. */
export class Backoff {
  /**
   * @param {number} cap seconds
   * @param {{ base?: number, random?: () => number }} [options]
   */
  constructor(cap, { base = 0.5, random = Math.random } = {}) {
    this.cap = cap;
    this.base = Math.min(base, cap);
    this.random = random;
    this.failures = 0;
  }

  /** The next delay in seconds. */
  next() {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.min(this.failures, 60));
    this.failures += 1;
    return ceiling * (0.5 + 0.5 * this.random());
  }

  reset() {
    this.failures = 0;
  }
}
