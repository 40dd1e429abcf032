/**
 * The DSN that `@sentry/core` built `url` from (`https://key@host/path/1` for `https://host/path/api/1/envelope/?
 * sentry_key=key&...`), or undefined for a URL of another shape (a tunnel).
 * @param {string} url
 */
export function dsnFromUrl(url: string): string | undefined;
export class SpoolTransport {
    /**
     * @param {TransportOptions} options
     * @param {ResolvedSettings} settings
     */
    constructor(options: TransportOptions, settings: ResolvedSettings);
    settings: import("./settings.js").ResolvedSettings;
    url: string;
    dsn: string;
    folder: string;
    limits: RateLimits;
    lost: LostEvents;
    backoff: Backoff;
    /** @type {Set<string>} */
    warned: Set<string>;
    captures: number;
    capturesAtExitFlush: number;
    closed: boolean;
    delivery: Delivery;
    /** @type {Store} */
    store: Store;
    sender: Sender;
    /** @returns {Store} */
    openStore(): Store;
    /**
     * Put `envelope` in the spool. Resolves once its file is in place (or it is in memory, after a fallback); never
     * rejects, never touches the network.
     * @param {SentryEnvelope} envelope
     * @returns {PromiseLike<TransportResponse>}
     */
    send(envelope: SentryEnvelope): PromiseLike<TransportResponse>;
    /**
     * Wait until every file that was in the spool folder when called has been sent (by whichever process sends), up
     * to `timeout` ms (0 or none: no limit). True when it was; false on the timeout (the files stay for later).
     * Losses counted so far are written as a client report first.
     * @param {number} [timeout]
     * @returns {Promise<boolean>}
     */
    flush(timeout?: number): Promise<boolean>;
    /**
     * Flush (see flush), then stop sending and give up the sender lock. Nothing is deleted: what is left is sent by
     * the next process on this spool. Envelopes sent to a closed transport still go to the spool.
     * @param {number} [timeout]
     * @returns {Promise<boolean>}
     */
    close(timeout?: number): Promise<boolean>;
    /** @returns {TransportState} */
    state(): TransportState;
    /**
     * Whether `item` may be spooled or sent now. An optional item (not an error, attachment, session...) whose
     * category is rate limited is dropped and counted.
     * @param {Item} item
     */
    keepUnderRateLimits(item: Item): boolean;
    /**
     * @param {string} reason
     * @param {Iterable<Quantity>} pairs
     */
    countLost(reason: string, pairs: Iterable<Quantity>): void;
    writeClientReport(): void;
    /**
     * Store an envelope; resolves when it is stored (its file in place, or in memory after a fallback), and wakes the
     * sender then. Never rejects.
     * @param {Buffer} data
     * @param {Quantity[]} quantities
     * @returns {Promise<void>}
     */
    write(data: Buffer, quantities: Quantity[]): Promise<void>;
    /**
     * The file of an envelope could not be written: from now on, envelopes are kept in memory.
     * @param {Store} failed the store that could not write it
     * @param {unknown} error
     * @param {Buffer} data
     * @param {Quantity[]} quantities
     */
    fallBack(failed: Store, error: unknown, data: Buffer, quantities: Quantity[]): void;
    /**
     * @param {string} key
     * @param {string} message
     */
    warnOnce(key: string, message: string): void;
    stop(): void;
    /** When the event loop runs empty: one last flush of at most exitFlushSeconds, if anything was captured since. */
    flushBeforeExit(): void;
}
export type SentryEnvelope = import("./envelope.js").SentryEnvelope;
export type Item = import("./envelope.js").Item;
export type Quantity = import("./envelope.js").Quantity;
export type Store = import("./spool.js").Store;
export type ResolvedSettings = import("./settings.js").ResolvedSettings;
/**
 * What `@sentry/core` passes to a transport factory (the subset used here).
 */
export type TransportOptions = {
    url: string;
    headers?: Record<string, string>;
    caCerts?: string | Buffer | Array<string | Buffer>;
    recordDroppedEvent?: unknown;
};
/**
 * What `send()` resolves with (@sentry/core's TransportMakeRequestResponse): nothing, as no answer exists yet.
 */
export type TransportResponse = {
    statusCode?: number;
    headers?: {
        [key: string]: string | null;
        "x-sentry-rate-limits": string | null;
        "retry-after": string | null;
    };
};
/**
 * What the transport can say about itself.
 */
export type TransportState = {
    durable: boolean;
    sender: boolean;
    folder: string | null;
    sent: number;
    spooledBytes: number;
};
import { RateLimits } from './limits.js';
import { LostEvents } from './losses.js';
import { Backoff } from './limits.js';
import { Delivery } from './delivery.js';
import { Sender } from './sender.js';
