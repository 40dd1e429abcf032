// Envelopes as the spool stores them: Sentry's envelope format (a JSON header line, then items, each a JSON header
// line and a payload), the data category of each item, what losing an item counts as in a client report, and the
// categories encoded in a spool file's name.

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

// Data categories that are never dropped for a rate limit: they wait in the spool until it ends. Every other
// category (transactions, spans, profiles, replays, check-ins, logs, ...) is dropped while limited and counted.
export const HELD_CATEGORIES = new Set(['error', 'default', 'security', 'attachment', 'session', 'internal', 'feedback']);

// Item types whose data category has another name (the same table as @sentry/core's).
/** @type {Record<string, string>} */
const CATEGORY_OF_TYPE = {
  event: 'error',
  sessions: 'session',
  client_report: 'internal',
  user_report: 'default',
  profile_chunk: 'profile',
  replay_event: 'replay',
  replay_recording: 'replay',
  check_in: 'monitor',
  raw_security: 'security',
  log: 'log_item',
  otel_log: 'log_item',
  metric: 'trace_metric',
  statsd: 'metric_bucket',
};
const CATEGORY_CHARS = /[^a-z0-9_]/g;
const SENT_AT = /"sent_at"\s*:\s*"[^"]*"/;
const NEWLINE = 0x0a;

/**
 * The data category of an item type (`event` → `error`, `client_report` → `internal`, ...).
 * @param {unknown} type
 */
export function categoryOf(type) {
  const name = typeof type === 'string' ? type : 'default';
  return CATEGORY_OF_TYPE[name] ?? name;
}

/**
 * `@sentry/core`'s envelope as items with their payloads as bytes. Every item header gets its exact `length`, so that
 * a payload holding newlines (an attachment) is read back whole.
 * @param {SentryEnvelope} envelope
 * @returns {Envelope}
 */
export function fromSentry(envelope) {
  const [headers, items] = envelope;
  return {
    headers,
    items: items.map(([itemHeaders, value]) => {
      const payload = toBytes(value);
      return { headers: { ...itemHeaders, length: payload.length }, payload, value };
    }),
  };
}

/** @param {unknown} value */
function toBytes(value) {
  if (typeof value === 'string') return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(stringify(value));
}

/**
 * JSON for any payload. `@sentry/core` has normalized events already; what still fails (a cycle, a BigInt) is written
 * with the offending values replaced rather than lost.
 * @param {unknown} value
 */
function stringify(value) {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    const seen = new WeakSet();
    return JSON.stringify(value, (_key, v) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[Circular ~]';
        seen.add(v);
      }
      return v;
    });
  }
}

/**
 * The envelope as bytes: what a spool file holds and what is posted.
 * @param {Envelope} envelope
 * @returns {Buffer}
 */
export function serialize(envelope) {
  /** @type {Buffer[]} */
  const parts = [Buffer.from(JSON.stringify(envelope.headers))];
  for (const item of envelope.items) {
    parts.push(Buffer.from(`\n${JSON.stringify(item.headers)}\n`), item.payload);
  }
  return Buffer.concat(parts);
}

/**
 * Reads an envelope: items with a `length` take that many bytes, others run to the next newline. Throws on
 * anything that is not an envelope.
 * @param {Buffer} data
 * @returns {Envelope}
 */
export function parse(data) {
  let end = data.indexOf(NEWLINE);
  if (end < 0) end = data.length;
  const headers = JSON.parse(data.subarray(0, end).toString());
  /** @type {Item[]} */
  const items = [];
  let at = end + 1;
  while (at < data.length) {
    let lineEnd = data.indexOf(NEWLINE, at);
    if (lineEnd < 0) lineEnd = data.length;
    if (lineEnd === at) {
      at += 1; // a blank line between items, or the final newline
      continue;
    }
    const itemHeaders = JSON.parse(data.subarray(at, lineEnd).toString());
    const length = itemHeaders.length;
    let payloadEnd;
    if (typeof length === 'number' && length >= 0) {
      payloadEnd = lineEnd + 1 + length;
      if (payloadEnd > data.length) throw new Error('an envelope item is shorter than its length');
    } else {
      payloadEnd = data.indexOf(NEWLINE, lineEnd + 1);
      if (payloadEnd < 0) payloadEnd = data.length;
    }
    items.push({ headers: itemHeaders, payload: data.subarray(Math.min(lineEnd + 1, data.length), payloadEnd) });
    at = payloadEnd + 1;
  }
  return { headers, items };
}

/**
 * What losing `item` counts as, as the Python SDK (and sentry-sdk's record_lost_event) counts it: one per event;
 * a transaction's spans with it; span, log and metric items by their `item_count`, logs and metrics in bytes too;
 * attachments in bytes (an empty one as 1).
 * @param {Item} item
 * @returns {Quantity[]}
 */
export function itemQuantities(item) {
  const category = categoryOf(item.headers.type);
  if (category === 'transaction') return [['transaction', 1], ['span', spanCount(item) + 1]];
  if (category === 'span' || category === 'log_item' || category === 'trace_metric') {
    const count = item.headers.item_count;
    /** @type {Quantity[]} */
    const pairs = [[category, Number.isSafeInteger(count) && count > 0 ? count : 1]];
    if (category === 'log_item') pairs.push(['log_byte', item.payload.length]);
    if (category === 'trace_metric') pairs.push(['trace_metric_byte', item.payload.length]);
    return pairs;
  }
  if (category === 'attachment') return [['attachment', item.payload.length || 1]];
  return [[category, 1]];
}

/** @param {Item} item */
function spanCount(item) {
  let value = item.value;
  if (value === undefined) {
    try {
      value = JSON.parse(item.payload.toString());
    } catch {
      return 0;
    }
  }
  const spans = /** @type {any} */ (value)?.spans;
  return Array.isArray(spans) ? spans.length : 0;
}

/**
 * `[['error', 1], ['attachment', 2048]]` → `'error+attachment=2048'` (file-name safe, merged), `'none'` when empty.
 * @param {Iterable<Quantity>} pairs
 */
export function encodeCategories(pairs) {
  /** @type {Map<string, number>} */
  const merged = new Map();
  for (const [category, quantity] of pairs) {
    const name = category.toLowerCase().replace(CATEGORY_CHARS, '') || 'default';
    merged.set(name, (merged.get(name) ?? 0) + quantity);
  }
  return [...merged].map(([name, quantity]) => (quantity === 1 ? name : `${name}=${quantity}`)).join('+') || 'none';
}

/**
 * The pairs encoded in a spool file's name (`<time>-<pid>-<seq>_<categories>.envelope`).
 * @param {string} name
 * @returns {Quantity[]}
 */
export function decodeCategories(name) {
  const stem = name.endsWith('.envelope') ? name.slice(0, -'.envelope'.length) : name;
  const at = stem.indexOf('_');
  if (at < 0) return [];
  /** @type {Quantity[]} */
  const pairs = [];
  for (const part of stem.slice(at + 1).split('+')) {
    const [category, quantity] = part.split('=', 2);
    if (category && category !== 'none') pairs.push([category, /^\d+$/.test(quantity ?? '') ? Number(quantity) : 1]);
  }
  return pairs;
}

/**
 * The envelope with its header's `sent_at` set to now: servers correct clock drift with it, so it must be the
 * moment of sending, not of capturing.
 * @param {Buffer} data
 * @returns {Buffer}
 */
export function withSentAtNow(data) {
  let end = data.indexOf(NEWLINE);
  if (end < 0) end = data.length;
  const header = data.subarray(0, end).toString();
  if (!SENT_AT.test(header)) return data;
  const fresh = header.replace(SENT_AT, `"sent_at":"${new Date().toISOString()}"`);
  return Buffer.concat([Buffer.from(fresh), data.subarray(end)]);
}
