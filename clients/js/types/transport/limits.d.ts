/** @typedef {{ status: number, retryAfter: string | undefined, rateLimits: string | undefined }} Answer */
/**
 * `Retry-After` as seconds (a number of seconds or an HTTP date), capped; undefined when absent or unreadable.
 * @param {string | undefined} value
 * @param {number} [now] epoch milliseconds
 * @returns {number | undefined}
 */
export function parseRetryAfter(value: string | undefined, now?: number): number | undefined;
/**
 * `X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>[:<reason>[:<namespaces>]], ...` as (category, seconds)
 * pairs; the category `null` stands for every category (an empty list).
 * @param {string} header
 * @returns {Array<[string | null, number]>}
 */
export function parseRateLimits(header: string): Array<[string | null, number]>;
export const DEFAULT_RETRY_AFTER: 60;
export const MAX_RETRY_AFTER: 3600;
/** Per-category "do not send before" deadlines on the monotonic clock; the null category holds back everything. */
export class RateLimits {
    /** @param {() => number} [clock] monotonic seconds */
    constructor(clock?: () => number);
    clock: () => number;
    /** @type {Map<string | null, number>} */
    until: Map<string | null, number>;
    /**
     * Apply an answer's headers. X-Sentry-Rate-Limits is honoured on every status, as the protocol says; a 429
     * without it holds back every category for its Retry-After (else 60 s).
     * @param {Answer} answer
     */
    update(answer: Answer): void;
    /**
     * @param {string | null} category
     * @param {number} seconds
     */
    extend(category: string | null, seconds: number): void;
    /**
     * Seconds until `category` may be sent again (0 when it may be sent now).
     * @param {string} category
     */
    remaining(category: string): number;
    /**
     * Seconds until every one of `categories` may be sent again.
     * @param {Iterable<string>} categories
     */
    blocked(categories: Iterable<string>): number;
}
/** Exponential backoff with jitter: `base · 2ⁿ` capped at `cap`, each delay drawn from ½–1 of that. */
export class Backoff {
    /**
     * @param {number} cap seconds
     * @param {{ base?: number, random?: () => number }} [options]
     */
    constructor(cap: number, { base, random }?: {
        base?: number;
        random?: () => number;
    });
    cap: number;
    base: number;
    random: () => number;
    failures: number;
    /** The next delay in seconds. */
    next(): number;
    reset(): void;
}
export type Answer = {
    status: number;
    retryAfter: string | undefined;
    rateLimits: string | undefined;
};
