// A local HTTP server that stands in for Stackwatch's ingest and records what the SDK sent: every request's raw and
// decoded bytes, and each envelope parsed into its items. Tests assert on it; it answers 200 like the real server.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/**
 * @typedef {{ header: Record<string, any>, payload: Buffer, json: any }} EnvelopeItem
 * @typedef {{ header: Record<string, any>, items: EnvelopeItem[] }} Envelope
 * @typedef {{ method: string, url: string, headers: import('node:http').IncomingHttpHeaders, raw: Buffer,
 *   body: Buffer, envelope: Envelope | null }} RecordedRequest
 */

/**
 * The body as sent, without its Content-Encoding.
 * @param {Buffer} raw
 * @param {string | undefined} encoding
 */
function decode(raw, encoding) {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case '':
    case 'identity':
      return raw;
    case 'gzip':
      return gunzipSync(raw);
    case 'deflate':
      return inflateSync(raw);
    case 'br':
      return brotliDecompressSync(raw);
    default:
      throw new Error(`the recorder cannot decode Content-Encoding ${encoding}`);
  }
}

/**
 * Parse a Sentry envelope: a header line, then items of a header line and a payload of `length` bytes (or up to
 * the next newline when there is no length).
 * @param {Buffer} body
 * @returns {Envelope}
 */
export function parseEnvelope(body) {
  let at = body.indexOf(0x0a);
  if (at < 0) at = body.length;
  const header = JSON.parse(body.subarray(0, at).toString('utf8'));
  /** @type {EnvelopeItem[]} */
  const items = [];
  let pos = at + 1;
  while (pos < body.length) {
    let end = body.indexOf(0x0a, pos);
    if (end < 0) end = body.length;
    const line = body.subarray(pos, end).toString('utf8').trim();
    pos = end + 1;
    if (!line) continue;
    const itemHeader = JSON.parse(line);
    let payload;
    if (typeof itemHeader.length === 'number') {
      payload = body.subarray(pos, pos + itemHeader.length);
      pos += itemHeader.length + 1;
    } else {
      let stop = body.indexOf(0x0a, pos);
      if (stop < 0) stop = body.length;
      payload = body.subarray(pos, stop);
      pos = stop + 1;
    }
    let json = null;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      // attachments and other binary items stay bytes
    }
    items.push({ header: itemHeader, payload, json });
  }
  return { header, items };
}

/**
 * Start a recorder on 127.0.0.1 (a free port). `dsn` points SDKs at it (project 1, any key).
 */
export async function startRecorder() {
  /** @type {RecordedRequest[]} */
  const requests = [];
  /** @type {Set<() => void>} */
  const waiters = new Set();
  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      /** @type {Buffer} */
      let body = raw;
      /** @type {Envelope | null} */
      let envelope = null;
      try {
        body = decode(raw, req.headers['content-encoding']);
        if (req.url?.includes('/envelope/')) envelope = parseEnvelope(body);
      } catch (err) {
        res.writeHead(400, { 'x-sentry-error': String(err) }).end();
        return;
      }
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw, body, envelope });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: envelope?.header.event_id ?? null }));
      for (const wake of waiters) wake();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());

  /** Every item of every envelope received so far. */
  const items = () => requests.flatMap((r) => r.envelope?.items ?? []);
  /** The payloads of the `event` items received so far. */
  const events = () => items().filter((i) => i.header.type === 'event').map((i) => i.json);

  return {
    dsn: `http://stackwatchtestkey@127.0.0.1:${port}/1`,
    port,
    requests,
    items,
    events,
    /** Everything received, raw and decoded, as one buffer (to look for what must not be there). */
    bytes: () => Buffer.concat(requests.flatMap((r) => [r.raw, Buffer.from('\n'), r.body, Buffer.from('\n')])),
    /**
     * Resolve once `done(events)` holds, or reject after `timeoutMs`.
     * @param {(events: any[]) => boolean} done
     * @param {number} [timeoutMs]
     */
    waitFor(done, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(events())) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(events());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const got = `${events().length} events`;
          reject(new Error(`the recorder did not get the expected events in ${timeoutMs} ms (${got})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
