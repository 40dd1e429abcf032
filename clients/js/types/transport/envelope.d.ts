/**
 * The data category of an item type (`event` → `error`, `client_report` → `internal`, ...).
 * @param {unknown} type
 */
export function categoryOf(type: unknown): string;
/**
 * `@sentry/core`'s envelope as items with their payloads as bytes. Every item header gets its exact `length`, so that
 * a payload holding newlines (an attachment) is read back whole.
 * @param {SentryEnvelope} envelope
 * @returns {Envelope}
 */
export function fromSentry(envelope: SentryEnvelope): Envelope;
/**
 * The envelope as bytes: what a spool file holds and what is posted.
 * @param {Envelope} envelope
 * @returns {Buffer}
 */
export function serialize(envelope: Envelope): Buffer;
/**
 * Reads an envelope: items with a `length` take that many bytes, others run to the next newline. Throws on
 * anything that is not an envelope.
 * @param {Buffer} data
 * @returns {Envelope}
 */
export function parse(data: Buffer): Envelope;
/**
 * What losing `item` counts as, as the Python SDK (and sentry-sdk's record_lost_event) counts it: one per event;
 * a transaction's spans with it; span, log and metric items by their `item_count`, logs and metrics in bytes too;
 * attachments in bytes (an empty one as 1).
 * @param {Item} item
 * @returns {Quantity[]}
 */
export function itemQuantities(item: Item): Quantity[];
/**
 * `[['error', 1], ['attachment', 2048]]` → `'error+attachment=2048'` (file-name safe, merged), `'none'` when empty.
 * @param {Iterable<Quantity>} pairs
 */
export function encodeCategories(pairs: Iterable<Quantity>): string;
/**
 * The pairs encoded in a spool file's name (`<time>-<pid>-<seq>_<categories>.envelope`).
 * @param {string} name
 * @returns {Quantity[]}
 */
export function decodeCategories(name: string): Quantity[];
/**
 * The envelope with its header's `sent_at` set to now: servers correct clock drift with it, so it must be the
 * moment of sending, not of capturing.
 * @param {Buffer} data
 * @returns {Buffer}
 */
export function withSentAtNow(data: Buffer): Buffer;
/**
 * An envelope as `@sentry/core` hands it to a transport: `[headers, [[itemHeaders, payload], ...]]`.
 * @typedef {[Record<string, any>, ReadonlyArray<readonly [Record<string, any>, unknown]>]} SentryEnvelope
 */
/**
 * One item with its payload as bytes (`value` is the payload object when there was one).
 * @typedef {{ headers: Record<string, any>, payload: Buffer, value?: unknown }} Item
 */
/** @typedef {{ headers: Record<string, any>, items: Item[] }} Envelope */
/** A (data category, quantity) pair, as client reports count them. */
/** @typedef {[string, number]} Quantity */
export const HELD_CATEGORIES: Set<string>;
/**
 * An envelope as `@sentry/core` hands it to a transport: `[headers, [[itemHeaders, payload], ...]]`.
 */
export type SentryEnvelope = [Record<string, any>, ReadonlyArray<readonly [Record<string, any>, unknown]>];
/**
 * One item with its payload as bytes (`value` is the payload object when there was one).
 */
export type Item = {
    headers: Record<string, any>;
    payload: Buffer;
    value?: unknown;
};
export type Envelope = {
    headers: Record<string, any>;
    items: Item[];
};
export type Quantity = [string, number];
