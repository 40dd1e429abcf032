// The spool transport: a Sentry transport (`send`, `flush`) that puts every envelope in the spool before `send()`
// resolves and sends from there (sender.js). @sentry/core's own transport keeps up to 64 requests in memory and
// drops the rest while the server is away; whatever is queued dies with the process. This one writes each envelope
// to a file off the event loop (the file is complete and in place when `send()` resolves; if the process exits
// first, an `exit` listener writes it synchronously), never waits for the network, and never throws or rejects into
// the application.

import { Delivery } from './delivery.js';
import { categoryOf, fromSentry, HELD_CATEGORIES, itemQuantities, serialize } from './envelope.js';
import { Backoff, RateLimits } from './limits.js';
import { LostEvents } from './losses.js';
import { MemorySpool } from './memory.js';
import { Sender } from './sender.js';
import { DiskSpool, folderFor, writeAllOutstanding } from './spool.js';

/** @typedef {import('./envelope.js').SentryEnvelope} SentryEnvelope */
/** @typedef {import('./envelope.js').Item} Item */
/** @typedef {import('./envelope.js').Quantity} Quantity */
/** @typedef {import('./spool.js').Store} Store */
/** @typedef {import('./settings.js').ResolvedSettings} ResolvedSettings */

/**
 * What `@sentry/core` passes to a transport factory (the subset used here).
 * @typedef {{
 *   url: string,
 *   headers?: Record<string, string>,
 *   caCerts?: string | Buffer | Array<string | Buffer>,
 *   recordDroppedEvent?: unknown,
 * }} TransportOptions
 */

/**
 * What `send()` resolves with (@sentry/core's TransportMakeRequestResponse): nothing, as no answer exists yet.
 * @typedef {{
 *   statusCode?: number,
 *   headers?: { [key: string]: string | null, 'x-sentry-rate-limits': string | null, 'retry-after': string | null },
 * }} TransportResponse
 */

/**
 * What the transport can say about itself.
 * @typedef {{ durable: boolean, sender: boolean, folder: string | null, sent: number, spooledBytes: number }} TransportState
 */

const FLUSH_POLL_MS = 50;
/** @type {Set<SpoolTransport>} every open transport, for the process-wide exit listeners */
const OPEN = new Set();
let listening = false;

export class SpoolTransport {
  /**
   * @param {TransportOptions} options
   * @param {ResolvedSettings} settings
   */
  constructor(options, settings) {
    if (!options || typeof options.url !== 'string') throw new Error('makeSpoolTransport: the transport options have no url');
    this.settings = settings;
    this.url = options.url;
    this.dsn = settings.dsn ?? dsnFromUrl(options.url) ?? options.url;
    this.folder = folderFor(this.dsn, settings.spoolDir);
    this.limits = new RateLimits();
    this.lost = new LostEvents();
    this.backoff = new Backoff(settings.retryMaxSeconds, { base: settings.retryBaseSeconds });
    /** @type {Set<string>} */
    this.warned = new Set();
    this.captures = 0;
    this.capturesAtExitFlush = -1;
    this.closed = false;
    this.delivery = new Delivery(options.url, {
      connectTimeoutSeconds: settings.connectTimeoutSeconds,
      readTimeoutSeconds: settings.readTimeoutSeconds,
      compress: settings.compress,
      headers: options.headers,
      caCerts: options.caCerts,
    });
    /** @type {Store} */
    this.store = this.openStore();
    this.sender = new Sender(this);
    watchExit(this);
    this.sender.start();
  }

  /** @returns {Store} */
  openStore() {
    const { settings } = this;
    try {
      return new DiskSpool(this.folder, {
        maxBytes: settings.spoolMaxBytes,
        fsync: settings.fsync,
        dsn: this.dsn,
        listSeconds: settings.pollIntervalSeconds,
        heartbeatSeconds: settings.heartbeatSeconds,
        staleLockSeconds: settings.staleLockSeconds,
      });
    } catch (error) {
      this.warnOnce('fallback', `cannot use the spool folder ${this.folder} (${errorText(error)})`);
      return new MemorySpool({ maxBytes: settings.memoryMaxBytes });
    }
  }

  // --- the Sentry Transport interface ---------------------------------------------------------------------------

  /**
   * Put `envelope` in the spool. Resolves once its file is in place (or it is in memory, after a fallback); never
   * rejects, never touches the network.
   * @param {SentryEnvelope} envelope
   * @returns {PromiseLike<TransportResponse>}
   */
  send(envelope) {
    try {
      const { headers, items } = fromSentry(envelope);
      const kept = items.filter((item) => this.keepUnderRateLimits(item));
      if (kept.length > 0) {
        this.captures += 1;
        return this.write(serialize({ headers, items: kept }), kept.flatMap(itemQuantities)).then(() => ({}));
      }
    } catch (error) {
      this.warnOnce('capture', `could not spool an envelope (${errorText(error)})`);
    }
    return Promise.resolve({});
  }

  /**
   * Wait until every file that was in the spool folder when called has been sent (by whichever process sends), up
   * to `timeout` ms (0 or none: no limit). True when it was; false on the timeout (the files stay for later).
   * Losses counted so far are written as a client report first.
   * @param {number} [timeout]
   * @returns {Promise<boolean>}
   */
  async flush(timeout) {
    try {
      this.writeClientReport();
      await this.store.settled(); // every envelope sent before this call has its file
      const store = this.store;
      const names = await store.pending(true);
      if (names.length === 0) return true;
      const mark = names[names.length - 1];
      const deadline = timeout && timeout > 0 ? performance.now() + timeout : Infinity;
      this.sender.flushStarted();
      try {
        for (;;) {
          const remaining = deadline - performance.now();
          if (remaining <= 0) return false;
          await this.sender.progress(Math.min(FLUSH_POLL_MS, remaining));
          const left = await this.store.pending(true);
          if (left.length === 0 || left[0] > mark) return true;
        }
      } finally {
        this.sender.flushEnded();
      }
    } catch (error) {
      this.warnOnce('flush', `flush failed (${errorText(error)})`);
      return false;
    }
  }

  /**
   * Flush (see flush), then stop sending and give up the sender lock. Nothing is deleted: what is left is sent by
   * the next process on this spool. Envelopes sent to a closed transport still go to the spool.
   * @param {number} [timeout]
   * @returns {Promise<boolean>}
   */
  async close(timeout) {
    const flushed = await this.flush(timeout);
    this.stop();
    return flushed;
  }

  /** @returns {TransportState} */
  state() {
    const store = this.store;
    return {
      durable: store.durable,
      sender: this.sender.isSender,
      folder: store instanceof DiskSpool ? store.folder : null,
      sent: this.sender.sent,
      spooledBytes: store.totalBytes,
    };
  }

  // --- used by the sender ---------------------------------------------------------------------------------------

  /**
   * Whether `item` may be spooled or sent now. An optional item (not an error, attachment, session...) whose
   * category is rate limited is dropped and counted.
   * @param {Item} item
   */
  keepUnderRateLimits(item) {
    const category = categoryOf(item.headers.type);
    if (HELD_CATEGORIES.has(category) || this.limits.remaining(category) <= 0) return true;
    this.countLost('ratelimit_backoff', itemQuantities(item));
    return false;
  }

  /**
   * @param {string} reason
   * @param {Iterable<Quantity>} pairs
   */
  countLost(reason, pairs) {
    if (this.settings.sendClientReports) this.lost.addAll(reason, pairs);
  }

  writeClientReport() {
    if (!this.settings.sendClientReports) return;
    const report = this.lost.takeReport();
    if (report !== undefined) this.write(report, [['internal', 1]]);
  }

  /**
   * Store an envelope; resolves when it is stored (its file in place, or in memory after a fallback), and wakes the
   * sender then. Never rejects.
   * @param {Buffer} data
   * @param {Quantity[]} quantities
   * @returns {Promise<void>}
   */
  write(data, quantities) {
    const store = this.store;
    const { lost, done } = store.write(data, quantities);
    this.countLost('queue_overflow', lost);
    return done.then(
      (error) => {
        if (error) this.fallBack(store, error, data, quantities);
        this.sender.wake();
      },
      (error) => this.warnOnce('capture', `could not spool an envelope (${errorText(error)})`),
    );
  }

  /**
   * The file of an envelope could not be written: from now on, envelopes are kept in memory.
   * @param {Store} failed the store that could not write it
   * @param {unknown} error
   * @param {Buffer} data
   * @param {Quantity[]} quantities
   */
  fallBack(failed, error, data, quantities) {
    if (this.store === failed) {
      this.warnOnce('fallback', `cannot write to the spool folder ${this.folder} (${errorText(error)})`);
      this.store = new MemorySpool({ maxBytes: this.settings.memoryMaxBytes });
    }
    // Written at once (MemorySpool), so nothing is left to wait for.
    this.countLost('queue_overflow', this.store.write(data, quantities).lost);
  }

  /**
   * @param {string} key
   * @param {string} message
   */
  warnOnce(key, message) {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    const suffix = key === 'fallback' ? '; falling back to an in-memory queue (not durable)' : '';
    console.warn(`@stackwatch/sdk: ${message}${suffix}`);
  }

  stop() {
    if (this.closed) return;
    this.closed = true;
    OPEN.delete(this);
    this.sender.stop();
    this.delivery.close();
  }

  /** When the event loop runs empty: one last flush of at most exitFlushSeconds, if anything was captured since. */
  flushBeforeExit() {
    if (this.closed || this.settings.exitFlushSeconds === 0 || this.captures === this.capturesAtExitFlush) return;
    this.capturesAtExitFlush = this.captures;
    // After the other beforeExit listeners (@sentry/node writes its client report in one).
    setImmediate(() => this.flush(this.settings.exitFlushSeconds * 1000));
  }
}

/** @param {SpoolTransport} transport */
function watchExit(transport) {
  if (!listening) {
    listening = true;
    process.on('beforeExit', onBeforeExit);
    process.on('exit', onExit);
  }
  OPEN.add(transport);
}

function onBeforeExit() {
  for (const transport of OPEN) transport.flushBeforeExit();
}

function onExit() {
  // Synchronous: give up the sender locks so that the next process sends at once (one whose flush waits tries the
  // lock every 50 ms). The sender's own store may differ from the transport's after a fallback to memory.
  // First, synchronously, the envelopes whose asynchronous writes have not completed: no callback runs after this.
  writeAllOutstanding();
  for (const transport of OPEN) {
    transport.sender.stop();
    transport.store.unlock();
  }
}

/**
 * The DSN that `@sentry/core` built `url` from (`https://key@host/path/1` for `https://host/path/api/1/envelope/?
 * sentry_key=key&...`), or undefined for a URL of another shape (a tunnel).
 * @param {string} url
 */
export function dsnFromUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const match = /^(.*)\/api\/(\d+)\/envelope\/?$/.exec(parsed.pathname);
  const key = parsed.searchParams.get('sentry_key');
  if (!match || !key) return undefined;
  return `${parsed.protocol}//${key}@${parsed.host}${match[1]}/${match[2]}`;
}

/** @param {unknown} error */
function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}
