/**
 * The servers of bench/js_overhead.mjs: a loopback HTTP server that records the envelopes it receives, and a
 * loopback port with nothing listening on it.
 */

import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/** @typedef {{ [key: string]: number }} Counts */


/** A loopback HTTP server that records every envelope it receives (per project), answering 200 after `delayMs`. */
export class RecordingServer {
  constructor(delayMs = 0) {
    this.delayMs = delayMs;
    /** @type {Map<string, { ids: Map<string, number>, clientReports: Counts, envelopes: number }>} */
    this.projects = new Map();
    /** @type {Set<NodeJS.Timeout>} */
    this.timers = new Set();
    this.server = http.createServer((request, response) => this.#handle(request, response));
  }

  async listen(port = 0) {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = /** @type {net.AddressInfo} */ (this.server.address()).port;
    return this.port;
  }

  /** @param {string} project */
  project(project) {
    let entry = this.projects.get(project);
    if (!entry) this.projects.set(project, (entry = { ids: new Map(), clientReports: {}, envelopes: 0 }));
    return entry;
  }

  /** @param {http.IncomingMessage} request @param {http.ServerResponse} response */
  #handle(request, response) {
    /** @type {Buffer[]} */
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      // Recorded on receipt, as a server that stores before it answers would.
      const project = /\/api\/([^/]+)\/envelope\//.exec(request.url ?? '')?.[1] ?? '?';
      this.#record(this.project(project), decode(Buffer.concat(chunks), request.headers['content-encoding']));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }, this.delayMs);
      this.timers.add(timer);
    });
  }

  /**
   * Counts the event items (by event_id) and the client reports of one envelope.
   * @param {{ ids: Map<string, number>, clientReports: Counts, envelopes: number }} entry @param {Buffer} body
   */
  #record(entry, body) {
    entry.envelopes += 1;
    let at = nextNewline(body, 0);
    const header = JSON.parse(body.subarray(0, at).toString('utf8') || '{}');
    for (at += 1; at < body.length; ) {
      const headerEnd = nextNewline(body, at);
      const raw = body.subarray(at, headerEnd).toString('utf8').trim();
      at = headerEnd + 1;
      if (!raw) continue;
      const item = JSON.parse(raw);
      const end = typeof item.length === 'number' ? at + item.length : nextNewline(body, at);
      const payload = body.subarray(at, end).toString('utf8');
      at = end + 1;
      if (item.type === 'event') {
        const id = header.event_id ?? JSON.parse(payload).event_id;
        entry.ids.set(id, (entry.ids.get(id) ?? 0) + 1);
      } else if (item.type === 'client_report') {
        for (const { reason, category, quantity } of JSON.parse(payload).discarded_events ?? []) {
          const key = `${reason}:${category}`;
          entry.clientReports[key] = (entry.clientReports[key] ?? 0) + quantity;
        }
      }
    }
  }

  async close() {
    for (const timer of this.timers) clearTimeout(timer);
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** @param {Buffer} body @param {string | undefined} encoding */
function decode(body, encoding) {
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  if (encoding === 'br') return brotliDecompressSync(body);
  return body;
}

/** @param {Buffer} body @param {number} from */
function nextNewline(body, from) {
  const at = body.indexOf(10, from);
  return at < 0 ? body.length : at;
}

/** A loopback port with nothing listening on it (that a recovery server can take later). */
export async function closedPort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  server.close();
  await once(server, 'close');
  return port;
}
