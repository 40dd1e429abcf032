// Envelopes shaped as @sentry/core hands them to a transport, spool folders in a temporary directory, and transports
// with short timings, for the tests that drive the transport in their own process.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { makeSpoolTransport, spoolFiles } from '../../src/transport/index.js';

/** @typedef {import('../../src/transport/envelope.js').SentryEnvelope} SentryEnvelope */

/** Timings short enough for tests (seconds). */
export const FAST = {
  retryBaseSeconds: 0.05,
  retryMaxSeconds: 0.4,
  pollIntervalSeconds: 0.05,
  lockRetrySeconds: 0.05,
  heartbeatSeconds: 0.2,
  staleLockSeconds: 5,
  rescanSeconds: 0.2,
  clientReportIntervalSeconds: 0.2,
  connectTimeoutSeconds: 1,
  readTimeoutSeconds: 2,
  exitFlushSeconds: 0,
};

export function eventId() {
  return randomBytes(16).toString('hex');
}

/**
 * @param {string} [id]
 * @returns {SentryEnvelope}
 */
export function errorEnvelope(id = eventId()) {
  return [
    { event_id: id, sent_at: '2000-01-01T00:00:00.000Z' },
    [[{ type: 'event' }, { event_id: id, level: 'error', message: 'something failed', platform: 'node' }]],
  ];
}

/**
 * @param {string} [id]
 * @returns {SentryEnvelope}
 */
export function transactionEnvelope(id = eventId()) {
  return [
    { event_id: id, sent_at: new Date().toISOString() },
    [[{ type: 'transaction' }, { event_id: id, type: 'transaction', transaction: 'GET /', spans: [{}, {}] }]],
  ];
}

/** @returns {SentryEnvelope} */
export function sessionEnvelope() {
  return [{ sent_at: new Date().toISOString() }, [[{ type: 'session' }, { sid: eventId(), status: 'ok', errors: 0 }]]];
}

/** A new empty directory, removed by the returned function. */
export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'stackwatch-spool-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A spool transport on `url` as @sentry/core would create it.
 * @param {string} url
 * @param {import('../../src/transport/index.js').SpoolSettings} settings
 */
export function openTransport(url, settings) {
  return makeSpoolTransport({ ...FAST, ...settings })({ url, recordDroppedEvent: () => {} });
}

/**
 * A spool transport in a new directory whose server never answers (nothing listens on port 1), so its files stay
 * where they are; stopped and removed when the test ends.
 * @param {import('node:test').TestContext} t
 * @param {import('../../src/transport/index.js').SpoolSettings} [settings]
 */
export function offlineSpool(t, settings) {
  const { dir, remove } = tempDir();
  const spool = openTransport('http://127.0.0.1:1/api/1/envelope/?sentry_key=k', { spoolDir: dir, ...settings });
  t.after(() => {
    spool.stop();
    remove();
  });
  return { spool, dir, folder: /** @type {string} */ (spool.state().folder) };
}

/**
 * The event ids in the spool files of `folder`, oldest first.
 * @param {string} folder
 */
export function spooledIds(folder) {
  return spoolFiles(folder).map((name) => JSON.parse(readFileSync(join(folder, name), 'utf8').split('\n')[0]).event_id);
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
