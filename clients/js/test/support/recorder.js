// A local HTTP server on 127.0.0.1 that plays a Sentry envelope endpoint and records every request it gets (its raw
// and decoded bytes, and the envelope read from them), for the tests to assert on. It answers as its mode says: 200 (the default), a status with headers, or never
// (hang); and it can go down (stop listening) and come up again on the same port. Its envelope reader is its own
// (not the transport's), so that a mistake in one is not hidden by the same mistake in the other.

import { createServer } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/**
 * @typedef {{
 *   time: number,
 *   path: string,
 *   headers: import('node:http').IncomingHttpHeaders,
 *   status: number | null,
 *   raw: Buffer,
 *   body: Buffer,
 *   envelope: Envelope | null,
 * }} Request
 * @typedef {{ headers: Record<string, any>, items: Array<{ headers: Record<string, any>, payload: any }> }} Envelope
 * @typedef {{ status: number, headers?: Record<string, string> } | 'hang'} Answer
 * @typedef {Answer | ((request: Request, index: number) => Answer)} Mode
 */

/**
 * @param {{ mode?: Mode, down?: boolean }} [options]
 */
export async function startRecorder({ mode = { status: 200 }, down = false } = {}) {
  /** @type {Request[]} */
  const requests = [];
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  /** @type {Set<import('node:http').ServerResponse>} */
  const hanging = new Set();
  let current = mode;
  let accepted = 0;

  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      /** @type {Request} */
      const request = { time: performance.now(), path: req.url ?? '', headers: req.headers, status: null, raw, body: raw, envelope: null };
      requests.push(request);
      try {
        request.body = decode(raw, req.headers['content-encoding']);
        request.envelope = readEnvelope(request.body);
      } catch {
        request.envelope = null;
      }
      const answer = typeof current === 'function' ? current(request, requests.length - 1) : current;
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      request.status = answer.status;
      if (answer.status >= 200 && answer.status < 300) accepted += 1;
      res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
      res.end(JSON.stringify({ id: request.envelope?.headers.event_id ?? null }));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await listen(server, 0);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const port = address.port;
  if (down) await stop();

  async function stop() {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const res of hanging) res.destroy();
    hanging.clear();
    for (const socket of sockets) socket.destroy();
    await closed;
  }

  /** Requests answered with a 2xx. */
  function acceptedRequests() {
    return requests.filter((r) => r.status !== null && r.status >= 200 && r.status < 300);
  }

  /** @param {string} type */
  function itemsOf(type) {
    return acceptedRequests().flatMap((r) => (r.envelope?.items ?? []).filter((i) => i.headers.type === type).map((i) => i.payload));
  }

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** @param {number} [projectId] */
    dsn: (projectId = 1) => `http://public@127.0.0.1:${port}/${projectId}`,
    /** The envelope endpoint URL as @sentry/core builds it from dsn(projectId). */
    envelopeUrl: (projectId = 1) =>
      `http://127.0.0.1:${port}/api/${projectId}/envelope/?sentry_version=7&sentry_key=public&sentry_client=test`,
    requests,
    get accepted() {
      return accepted;
    },
    /** Accepted envelopes. */
    get envelopes() {
      return acceptedRequests().map((r) => /** @type {Envelope} */ (r.envelope));
    },
    /** Payloads of accepted `event` items. */
    get events() {
      return itemsOf('event');
    },
    /** Event ids of accepted events, in order of arrival. */
    get eventIds() {
      return itemsOf('event').map((event) => event.event_id);
    },
    /** Every `discarded_events` entry of accepted client reports. */
    get discarded() {
      return itemsOf('client_report').flatMap((report) => report.discarded_events);
    },
    /** Everything received, raw and decoded, as one buffer (to look for what must not be there). */
    bytes: () => Buffer.concat(requests.flatMap((r) => [r.raw, Buffer.from('\n'), r.body, Buffer.from('\n')])),
    /** @param {Mode} next */
    setMode(next) {
      current = next;
    },
    down: stop,
    up: () => listen(server, port),
    /**
     * Resolves once `predicate()` holds; rejects after `timeoutMs` with `what` in the message.
     * @param {() => boolean} predicate
     * @param {string} what
     * @param {number} [timeoutMs]
     */
    async waitFor(predicate, what, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs;
      while (!predicate()) {
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    close: async () => {
      if (server.listening) await stop();
    },
  };
}

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
 * @param {import('node:http').Server} server
 * @param {number} port
 */
function listen(server, port) {
  return /** @type {Promise<void>} */ (
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    })
  );
}

/**
 * Read an envelope: a header line, then items of a header line and a payload of `length` bytes (or up to the next
 * newline); JSON payloads parsed, others kept as bytes.
 * @param {Buffer} body
 * @returns {Envelope}
 */
export function readEnvelope(body) {
  const lines = [];
  let at = 0;
  const next = () => {
    const end = body.indexOf(10, at);
    const line = body.subarray(at, end < 0 ? body.length : end);
    at = end < 0 ? body.length : end + 1;
    return line;
  };
  const headers = JSON.parse(next().toString());
  while (at < body.length) {
    const line = next();
    if (line.length === 0) continue;
    const itemHeaders = JSON.parse(line.toString());
    let payload;
    if (typeof itemHeaders.length === 'number') {
      payload = body.subarray(at, at + itemHeaders.length);
      at += itemHeaders.length + 1;
    } else {
      payload = next();
    }
    let value;
    try {
      value = JSON.parse(payload.toString());
    } catch {
      value = payload;
    }
    lines.push({ headers: itemHeaders, payload: value });
  }
  return { headers, items: lines };
}
