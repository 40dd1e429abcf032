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
    constructor(host: Host);
    host: Host;
    stopped: boolean;
    running: boolean;
    wakeRequested: boolean;
    /** @type {NodeJS.Timeout | undefined} */
    timer: NodeJS.Timeout | undefined;
    /** @type {Next} */
    next: Next;
    /** @type {Store | null} */
    lockedStore: Store | null;
    lastReport: number;
    lastRefresh: number;
    unreachable: boolean;
    sent: number;
    /** @type {Array<() => void>} */
    waiting: Array<() => void>;
    flushes: number;
    start(): void;
    /** Whether this transport sends its folder's files now. */
    get isSender(): boolean;
    /** A capture happened: go now, unless pausing after a failure or waiting for the lock. */
    wake(): void;
    /**
     * A flush waits for the folder's files: until flushEnded(), every step lists the folder afresh (the files other
     * processes wrote count, and the regular listing may be up to pollIntervalSeconds away), and a process that is not
     * the sender tries the lock every FLUSH_LOCK_RETRY_SECONDS instead of every lockRetrySeconds. Go now, unless
     * pausing after a failure.
     */
    flushStarted(): void;
    flushEnded(): void;
    /** @param {Next} next */
    schedule(next: Next): void;
    run(): Promise<void>;
    /** @returns {Promise<Next>} */
    tick(): Promise<Next>;
    /**
     * Send `names` in order. The seconds to pause after a failure (or 0), and the seconds until the first rate limit
     * that held files back ends (or 0).
     * @param {Store} store
     * @param {string[]} names
     */
    sendBatch(store: Store, names: string[]): Promise<{
        pause: number;
        heldBack: number;
    }>;
    /**
     * Send one spooled envelope; undefined to go on with the next, or the seconds to pause first.
     * @param {Store} store
     * @param {string} name
     * @param {string[]} categories
     * @returns {Promise<number | undefined>}
     */
    sendOne(store: Store, name: string, categories: string[]): Promise<number | undefined>;
    /**
     * @param {Store} store
     * @param {string} name
     * @param {string[]} categories
     * @param {Answer} answer
     * @returns {Promise<number | undefined>}
     */
    handleAnswer(store: Store, name: string, categories: string[], answer: Answer): Promise<number | undefined>;
    /**
     * The body to send: rate-limited optional items dropped (null when nothing is left), `sent_at` now.
     * @param {Buffer} data
     * @param {string[]} categories
     * @returns {Buffer | null}
     */
    prepare(data: Buffer, categories: string[]): Buffer | null;
    /** Resolves at the sender's next step (an envelope sent, a pass over the folder done) or after `ms`. */
    progress(ms: number): Promise<any>;
    notify(): void;
    stop(): void;
}
export type Store = import("./spool.js").Store;
export type Answer = import("./limits.js").Answer;
/**
 * What the sender waits for until its next step: `seconds`, unless a capture wakes it (`wakeable`), and no earlier
 * than `notBefore`; `lock` when it waits to try the sender lock again (a flush hurries that, a capture does not).
 */
export type Next = {
    seconds: number;
    wakeable: boolean;
    notBefore?: number;
    lock?: boolean;
};
/**
 * What the sender needs of its transport.
 */
export type Host = {
    store: Store;
    settings: import("./settings.js").ResolvedSettings;
    limits: import("./limits.js").RateLimits;
    backoff: import("./limits.js").Backoff;
    delivery: import("./delivery.js").Delivery;
    countLost(reason: string, pairs: Iterable<import("./envelope.js").Quantity>): void;
    keepUnderRateLimits(item: import("./envelope.js").Item): boolean;
    writeClientReport(): void;
    warnOnce(key: string, message: string): void;
};
