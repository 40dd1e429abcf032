// The sender loop: while this transport holds its folder's sender lock, it sends the folder's files oldest first
// (its own and other processes'), deleting each once the server has accepted it or can never accept it. It runs on
// unref'd timers, one step at a time, and its file and network work is asynchronous: it never blocks the event loop
// and never keeps a process alive. What each answer means is the Python SDK's rule (transport.py).

import { decodeCategories, HELD_CATEGORIES, parse, serialize, withSentAtNow } from './envelope.js';
import { DeliveryError, isOk, isPermanent } from './delivery.js';
import { parseRetryAfter } from './limits.js';

/** @typedef {import('./spool.js').Store} Store */
/** @typedef {import('./limits.js').Answer} Answer */
/**
 * What the sender waits for until its next step: `seconds`, unless a capture wakes it (`wakeable`), and no earlier
 * than `notBefore`; `lock` when it waits to try the sender lock again (a flush hurries that, a capture does not).
 * @typedef {{ seconds: number, wakeable: boolean, notBefore?: number, lock?: boolean }} Next
 */

// Everything left is rate limited: a new file (a client report, say) may be sendable before the limit ends, so a
// capture wakes the sender, but it lists the folder no more than twice a second however fast files come.
const HELD_BACK_RELIST_SECONDS = 0.5;
const FAILURE_PAUSE_SECONDS = 1;
// While a flush waits in a process that is not the sender, how often it tries the lock: the holder may exit (and
// remove the lock) at any moment, and then this process must send, its files and the others', before the flush
// times out. Each try is a few small file operations, for the length of a flush only.
const FLUSH_LOCK_RETRY_SECONDS = 0.05;

/**
 * What the sender needs of its transport.
 * @typedef {{
 *   store: Store,
 *   settings: import('./settings.js').ResolvedSettings,
 *   limits: import('./limits.js').RateLimits,
 *   backoff: import('./limits.js').Backoff,
 *   delivery: import('./delivery.js').Delivery,
 *   countLost(reason: string, pairs: Iterable<import('./envelope.js').Quantity>): void,
 *   keepUnderRateLimits(item: import('./envelope.js').Item): boolean,
 *   writeClientReport(): void,
 *   warnOnce(key: string, message: string): void,
 * }} Host
 */

export class Sender {
  /** @param {Host} host */
  constructor(host) {
    this.host = host;
    this.stopped = false;
    this.running = false;
    this.wakeRequested = false;
    /** @type {NodeJS.Timeout | undefined} */
    this.timer = undefined;
    /** @type {Next} */
    this.next = { seconds: 0, wakeable: true };
    /** @type {Store | null} */
    this.lockedStore = null;
    this.lastReport = now();
    this.lastRefresh = -Infinity;
    this.unreachable = false;
    this.sent = 0;
    /** @type {Array<() => void>} */
    this.waiting = [];
    this.flushes = 0;
  }

  start() {
    this.schedule({ seconds: 0, wakeable: true });
  }

  /** Whether this transport sends its folder's files now. */
  get isSender() {
    return this.lockedStore !== null && this.lockedStore === this.host.store;
  }

  /** A capture happened: go now, unless pausing after a failure or waiting for the lock. */
  wake() {
    if (this.stopped) return;
    if (this.running) {
      this.wakeRequested = true;
      return;
    }
    if (this.next.wakeable) this.schedule({ ...this.next, seconds: 0 });
  }

  /**
   * A flush waits for the folder's files: until flushEnded(), every step lists the folder afresh (the files other
   * processes wrote count, and the regular listing may be up to pollIntervalSeconds away), and a process that is not
   * the sender tries the lock every FLUSH_LOCK_RETRY_SECONDS instead of every lockRetrySeconds. Go now, unless
   * pausing after a failure.
   */
  flushStarted() {
    this.flushes += 1;
    if (this.stopped) return;
    if (this.running) {
      this.wakeRequested = true; // a lock wait that ends this step is short already
      return;
    }
    if (this.next.wakeable || this.next.lock) this.schedule({ ...this.next, seconds: 0 });
  }

  flushEnded() {
    this.flushes -= 1;
  }

  /** @param {Next} next */
  schedule(next) {
    clearTimeout(this.timer);
    this.next = next;
    const at = Math.max(next.seconds, (next.notBefore ?? 0) - now());
    this.timer = setTimeout(() => this.run(), Math.max(0, at * 1000));
    this.timer.unref();
  }

  async run() {
    this.timer = undefined;
    this.running = true;
    this.wakeRequested = false;
    /** @type {Next} */
    let next;
    try {
      next = await this.tick();
    } catch (error) {
      // A step the stop cut short (its request aborted, its folder removed after) is not a failure to report.
      if (!this.stopped) this.host.warnOnce('sender', `the spool sender failed (${error}); retrying`);
      next = { seconds: FAILURE_PAUSE_SECONDS, wakeable: false };
    }
    this.running = false;
    this.notify();
    if (this.stopped) return;
    this.schedule(this.wakeRequested && next.wakeable ? { ...next, seconds: 0 } : next);
  }

  /** @returns {Promise<Next>} */
  async tick() {
    const { store, settings } = this.host;
    if (this.lockedStore !== null && this.lockedStore !== store) {
      this.lockedStore.unlock(); // fell back to memory: let another process send the files
      this.lockedStore = null;
    }
    const flushing = this.flushes > 0;
    if (!(await store.tryLock())) {
      this.lockedStore = null;
      const retry = flushing ? Math.min(settings.lockRetrySeconds, FLUSH_LOCK_RETRY_SECONDS) : settings.lockRetrySeconds;
      return { seconds: retry, wakeable: false, lock: true };
    }
    this.lockedStore = store;
    const started = now();
    if (started - this.lastReport >= settings.clientReportIntervalSeconds) {
      this.lastReport = started;
      this.host.writeClientReport();
    }
    if (started - this.lastRefresh >= settings.rescanSeconds) {
      this.lastRefresh = started;
      await store.refresh();
    }
    const names = await store.pending(flushing);
    if (names.length === 0) return { seconds: settings.pollIntervalSeconds, wakeable: true };
    const { pause, heldBack } = await this.sendBatch(store, names);
    if (pause > 0) return { seconds: pause, wakeable: false };
    if (heldBack > 0) return { seconds: heldBack, wakeable: true, notBefore: started + HELD_BACK_RELIST_SECONDS };
    return { seconds: 0, wakeable: true };
  }

  /**
   * Send `names` in order. The seconds to pause after a failure (or 0), and the seconds until the first rate limit
   * that held files back ends (or 0).
   * @param {Store} store
   * @param {string[]} names
   */
  async sendBatch(store, names) {
    let heldBack = Infinity;
    for (const name of names) {
      if (this.stopped || !(await store.tryLock())) return { pause: 0, heldBack: 0 };
      const categories = decodeCategories(name).map(([category]) => category);
      const wait = this.host.limits.blocked(categories.filter((c) => HELD_CATEGORIES.has(c)));
      if (wait > 0) {
        heldBack = Math.min(heldBack, wait);
        continue;
      }
      const pause = await this.sendOne(store, name, categories);
      this.notify();
      if (pause !== undefined) return { pause, heldBack: 0 };
    }
    return { pause: 0, heldBack: Number.isFinite(heldBack) ? heldBack : 0 };
  }

  /**
   * Send one spooled envelope; undefined to go on with the next, or the seconds to pause first.
   * @param {Store} store
   * @param {string} name
   * @param {string[]} categories
   * @returns {Promise<number | undefined>}
   */
  async sendOne(store, name, categories) {
    let data;
    try {
      data = await store.read(name);
    } catch (error) {
      this.host.warnOnce('read', `cannot read ${name} from the spool (${error}); skipping it`);
      return undefined;
    }
    if (data === null) return undefined; // evicted, or sent by another process
    const body = this.prepare(data, categories);
    if (body === null) {
      await store.remove(name);
      return undefined;
    }
    const { delivery, limits, backoff } = this.host;
    store.inFlight = name;
    /** @type {Answer} */
    let answer;
    try {
      answer = await delivery.post(body);
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      if (this.stopped) return backoff.next(); // the stop cut the send short: nothing to report
      if (!this.unreachable) {
        this.unreachable = true;
        console.warn(`@stackwatch/sdk: cannot reach ${delivery.endpoint} (${error.message}); envelopes stay in the spool`);
      }
      return backoff.next();
    } finally {
      store.inFlight = null;
    }
    this.unreachable = false;
    limits.update(answer);
    return this.handleAnswer(store, name, categories, answer);
  }

  /**
   * @param {Store} store
   * @param {string} name
   * @param {string[]} categories
   * @param {Answer} answer
   * @returns {Promise<number | undefined>}
   */
  async handleAnswer(store, name, categories, answer) {
    const { limits, backoff } = this.host;
    if (isOk(answer)) {
      await store.remove(name);
      this.sent += 1;
      backoff.reset();
      return undefined;
    }
    if (isPermanent(answer)) {
      this.host.warnOnce(`status ${answer.status}`, `the server refused an envelope with ${answer.status}; dropping it`);
      // Counted before the file goes: whoever sees the spool without it (a flush) must find the loss.
      this.host.countLost('send_error', decodeCategories(name));
      await store.remove(name);
      return undefined;
    }
    if (answer.status === 429 && limits.blocked(categories.filter((c) => HELD_CATEGORIES.has(c))) > 0) {
      return undefined; // the limit now holds this file (and those like it) back; others may still go
    }
    const pause = backoff.next();
    const retryAfter = parseRetryAfter(answer.retryAfter);
    return retryAfter === undefined ? pause : Math.max(pause, retryAfter);
  }

  /**
   * The body to send: rate-limited optional items dropped (null when nothing is left), `sent_at` now.
   * @param {Buffer} data
   * @param {string[]} categories
   * @returns {Buffer | null}
   */
  prepare(data, categories) {
    const { limits } = this.host;
    if (categories.some((c) => !HELD_CATEGORIES.has(c) && limits.remaining(c) > 0)) {
      let envelope;
      try {
        envelope = parse(data);
      } catch {
        return withSentAtNow(data); // unreadable: the server will say so, and the file goes
      }
      const kept = envelope.items.filter((item) => this.host.keepUnderRateLimits(item));
      if (kept.length === 0) return null;
      data = serialize({ headers: envelope.headers, items: kept });
    }
    return withSentAtNow(data);
  }

  /** Resolves at the sender's next step (an envelope sent, a pass over the folder done) or after `ms`. */
  progress(/** @type {number} */ ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms); // ref'd: whoever waits for a flush wants the process to wait too
      this.waiting.push(done);
      function done() {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  }

  notify() {
    const waiting = this.waiting;
    this.waiting = [];
    for (const done of waiting) done();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lockedStore?.unlock();
    this.lockedStore = null;
    this.notify();
  }
}

/** Monotonic seconds. */
function now() {
  return performance.now() / 1000;
}
