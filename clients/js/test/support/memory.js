// A transport for tests that keeps every envelope @sentry/node sends in memory, parsed.
import * as Sentry from '@sentry/node';

/**
 * Parse a serialized envelope (newline-separated JSON; items with a `length` read by length).
 * @param {string | Uint8Array} body
 * @returns {{ header: any, items: Array<{ header: any, payload: any }> }}
 */
export function parseEnvelope(body) {
  const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  let offset = 0;
  const line = () => {
    const end = bytes.indexOf(0x0a, offset);
    const stop = end === -1 ? bytes.length : end;
    const text = bytes.subarray(offset, stop).toString('utf8');
    offset = stop + 1;
    return text;
  };
  const header = JSON.parse(line());
  const items = [];
  while (offset < bytes.length) {
    const text = line();
    if (!text.trim()) continue;
    const itemHeader = JSON.parse(text);
    let raw;
    if (typeof itemHeader.length === 'number') {
      raw = bytes.subarray(offset, offset + itemHeader.length).toString('utf8');
      offset += itemHeader.length + 1;
    } else {
      raw = line();
    }
    let payload = raw;
    try {
      payload = JSON.parse(raw);
    } catch {
      // an attachment
    }
    items.push({ header: itemHeader, payload });
  }
  return { header, items };
}

/**
 * A transport factory and what it received: `sent` holds the raw bodies, `events()` the event payloads.
 */
export function memoryTransport() {
  /** @type {Array<string | Uint8Array>} */
  const sent = [];
  /** @param {any} options */
  const transport = (options) =>
    Sentry.createTransport(options, async (request) => {
      sent.push(request.body);
      return { statusCode: 200 };
    });
  return {
    transport,
    sent,
    /** every raw byte sent, as one string */
    bytes: () => sent.map((b) => (typeof b === 'string' ? b : Buffer.from(b).toString('utf8'))).join('\n'),
    /** the event items sent so far */
    events: () =>
      sent.flatMap((b) => parseEnvelope(b).items.filter((i) => i.header.type === 'event').map((i) => i.payload)),
    clear: () => {
      sent.length = 0;
    },
  };
}
