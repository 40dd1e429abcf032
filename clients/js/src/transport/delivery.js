// Posting one envelope to the DSN's envelope endpoint: node:http or node:https over one keep-alive connection, no
// redirects followed, no retries here (the sender decides), a connect timeout and an idle timeout on the answer.
// The socket is unref'd: a request in flight never keeps a process alive (what it carried stays in the spool until
// it is answered).
//
// Bodies of 32 KiB and more are gzip-compressed, on the thread pool; smaller ones go as they are, as @sentry/node's
// own transport does: compressing a 3 kB event costs the event loop about 0.1 ms (the zlib stream's set-up and
// callbacks), more than the whole request, to save 2 kB on the wire.

import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);
export const GZIP_THRESHOLD = 32 * 1024;

/** @typedef {import('./limits.js').Answer} Answer */

/** The envelope got no answer: connection refused or reset, a timeout, a TLS failure... */
export class DeliveryError extends Error {}

/** @param {Answer} answer */
export function isOk(answer) {
  return answer.status >= 200 && answer.status < 300;
}

/**
 * The server will never accept this envelope (400 malformed, 413 too large, 401/403 bad key...). Everything else
 * that is not a success (429, 408, 5xx, and 3xx, as no redirect is followed) is worth sending again later.
 * @param {Answer} answer
 */
export function isPermanent(answer) {
  return answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429;
}

export class Delivery {
  /**
   * @param {string} url the envelope endpoint, with its query (sentry_key, sentry_version)
   * @param {{
   *   connectTimeoutSeconds: number,
   *   readTimeoutSeconds: number,
   *   compress: boolean,
   *   headers?: Record<string, string>,
   *   caCerts?: string | Buffer | Array<string | Buffer>,
   * }} options
   */
  constructor(url, { connectTimeoutSeconds, readTimeoutSeconds, compress, headers = {}, caCerts }) {
    this.url = new URL(url);
    const secure = this.url.protocol === 'https:';
    this.module = secure ? https : http;
    /** @type {http.Agent} */
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 1, ...(caCerts === undefined ? {} : { ca: caCerts }) })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.connectMs = connectTimeoutSeconds * 1000;
    this.readMs = readTimeoutSeconds * 1000;
    this.compress = compress;
    /** @type {Record<string, string>} */
    this.headers = { ...headers, 'Content-Type': 'application/x-sentry-envelope' };
  }

  /** Where envelopes go, without the query that holds the key. */
  get endpoint() {
    return `${this.url.origin}${this.url.pathname}`;
  }

  /**
   * Send one envelope; the server's answer, or a DeliveryError when there was none.
   * @param {Buffer} body
   * @returns {Promise<Answer>}
   */
  async post(body) {
    const gzipped = this.compress && body.length >= GZIP_THRESHOLD;
    const payload = gzipped ? await gzipAsync(body) : body;
    try {
      return await this.exchange(payload, gzipped);
    } catch (error) {
      // The server closed an idle keep-alive connection just as this request went out on it: once more, anew.
      if (/** @type {{ reused?: boolean }} */ (error).reused) return this.exchange(payload, gzipped);
      throw error;
    }
  }

  /**
   * @param {Buffer} payload
   * @param {boolean} gzipped
   * @returns {Promise<Answer>}
   */
  exchange(payload, gzipped) {
    return new Promise((resolve, reject) => {
      /** @type {NodeJS.Timeout | undefined} */
      let connectTimer;
      let reused = false;
      const fail = (/** @type {Error} */ error) => {
        clearTimeout(connectTimer);
        const wrapped = new DeliveryError(`${error.name}: ${error.message}`, { cause: error });
        reject(Object.assign(wrapped, { reused: reused && isResetBeforeAnswer(error) }));
      };
      const request = this.module.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          ...this.headers,
          ...(gzipped ? { 'Content-Encoding': 'gzip' } : {}),
          'Content-Length': String(payload.length),
        },
      });
      request.on('socket', (socket) => {
        socket.unref();
        reused = /** @type {{ reusedSocket?: boolean }} */ (request).reusedSocket === true;
        if (socket.connecting) {
          connectTimer = setTimeout(() => request.destroy(new Error('connect timeout')), this.connectMs);
          connectTimer.unref();
          socket.once('connect', () => clearTimeout(connectTimer));
        }
      });
      request.setTimeout(this.readMs, () => request.destroy(new Error('read timeout')));
      request.on('error', fail);
      request.on('response', (response) => {
        clearTimeout(connectTimer);
        response.on('error', fail);
        response.on('close', () => {
          if (!response.complete) fail(new Error('the answer was cut short'));
        });
        response.resume(); // the body is not needed; reading it frees the connection for the next request
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            retryAfter: header(response.headers['retry-after']),
            rateLimits: header(response.headers['x-sentry-rate-limits']),
          }),
        );
      });
      request.end(payload);
    });
  }

  close() {
    this.agent.destroy();
  }
}

/** @param {Error} error */
function isResetBeforeAnswer(error) {
  const code = /** @type {NodeJS.ErrnoException} */ (error).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || error.message === 'socket hang up';
}

/** @param {string | string[] | undefined} value */
function header(value) {
  return Array.isArray(value) ? value.join(',') : value;
}
