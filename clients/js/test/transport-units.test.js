// The spool transport's parts on their own: its public surface, settings, envelopes and file names, rate limits and
// backoff, and the sender lock between processes.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import * as transport from '../src/transport/index.js';
import {
  decodeCategories,
  encodeCategories,
  fromSentry,
  itemQuantities,
  parse,
  serialize,
  withSentAtNow,
} from '../src/transport/envelope.js';
import { Backoff, parseRateLimits, parseRetryAfter, RateLimits } from '../src/transport/limits.js';
import { LOCK_NAME, SenderLock } from '../src/transport/lock.js';
import { resolveSettings } from '../src/transport/settings.js';
import { dsnFromUrl } from '../src/transport/transport.js';
import { errorEnvelope, eventId, offlineSpool, sleep, spooledIds, tempDir } from './support/envelopes.js';

test('the package exports what docs/sdk-js-spool.md describes, and nothing else', () => {
  assert.deepEqual(Object.keys(transport).sort(), [
    'DEFAULT_MAX_BYTES',
    'MAX_BYTES_ENV',
    'SPOOL_DIR_ENV',
    'SpoolTransport',
    'folderFor',
    'makeSpoolTransport',
    'resolveSpoolDir',
    'spoolFiles',
  ]);
  const docs = readFileSync(new URL('../../../docs/sdk-js-spool.md', import.meta.url), 'utf8');
  for (const name of ['makeSpoolTransport', 'folderFor', 'resolveSpoolDir', 'spoolFiles']) assert.ok(docs.includes(name), name);
  for (const name of Object.keys(resolveSettings())) assert.ok(docs.includes(`\`${name}\``), `the setting ${name} is documented`);
});

test('settings: defaults, and a wrong one fails at once with its name', () => {
  const settings = resolveSettings({ spoolDir: '/x' });
  assert.equal(settings.spoolMaxBytes, 100 * 1024 * 1024);
  assert.equal(settings.retryMaxSeconds, 60);
  assert.equal(settings.exitFlushSeconds, 2);
  assert.equal(settings.compress, true);
  assert.equal(settings.fsync, false);
  assert.throws(() => resolveSettings(/** @type {any} */ ({ spoolMaxByte: 1 })), /unknown setting "spoolMaxByte"/);
  assert.throws(() => resolveSettings({ spoolMaxBytes: -1 }), /^Error: spoolMaxBytes: expected a positive number of bytes/);
  assert.throws(() => resolveSettings({ retryMaxSeconds: 0 }), /^Error: retryMaxSeconds: /);
  assert.throws(() => resolveSettings({ readTimeoutSeconds: Infinity }), /^Error: readTimeoutSeconds: /);
  assert.throws(() => resolveSettings(/** @type {any} */ ({ fsync: 'yes' })), /^Error: fsync: /);
  assert.equal(resolveSettings({ exitFlushSeconds: 0 }).exitFlushSeconds, 0);
  assert.throws(() => transport.makeSpoolTransport({ spoolMaxBytes: 0 }), /spoolMaxBytes/);
});

test('STACKWATCH_SPOOL_MAX_BYTES and the spool directory: argument, then environment, then XDG_STATE_HOME, then home', (t) => {
  const saved = { ...process.env };
  t.after(() => {
    process.env = saved;
  });
  process.env.STACKWATCH_SPOOL_MAX_BYTES = '512KB';
  assert.equal(resolveSettings().spoolMaxBytes, 512 * 1024);
  assert.equal(resolveSettings({ spoolMaxBytes: 10 }).spoolMaxBytes, 10);
  process.env.STACKWATCH_SPOOL_MAX_BYTES = 'lots';
  assert.throws(() => resolveSettings(), /^Error: STACKWATCH_SPOOL_MAX_BYTES: .*"lots"/);
  delete process.env.STACKWATCH_SPOOL_MAX_BYTES;

  process.env.HOME = '/home/someone';
  process.env.XDG_STATE_HOME = '/state';
  process.env.STACKWATCH_SPOOL_DIR = '/from/env';
  assert.equal(transport.resolveSpoolDir('/from/arg'), '/from/arg');
  assert.equal(transport.resolveSpoolDir(), '/from/env');
  delete process.env.STACKWATCH_SPOOL_DIR;
  assert.equal(transport.resolveSpoolDir(), '/state/stackwatch/spool');
  assert.equal(transport.folderFor('https://k@h/1'), transport.folderFor('https://k@h/1', '/state/stackwatch/spool'));
  process.env.XDG_STATE_HOME = 'relative'; // not absolute: ignored, as the XDG specification says
  assert.equal(transport.resolveSpoolDir(), '/home/someone/.local/state/stackwatch/spool');
  assert.equal(transport.resolveSpoolDir('~/spool'), '/home/someone/spool');
});

test('a DSN has the same folder as in the Python SDK, and file names encode categories as there', () => {
  // Python: folder_for(Path('/s'), 'https://0123456789abcdef@stackwatch.example.com/42')
  assert.equal(transport.folderFor('https://0123456789abcdef@stackwatch.example.com/42', '/s'), '/s/3c9b7c98a905c9a7');
  // Python: encode_categories([('error', 1), ('attachment', 2048), ('Error', 1), ('log-item', 3)])
  const pairs = /** @type {Array<[string, number]>} */ ([['error', 1], ['attachment', 2048], ['Error', 1], ['log-item', 3]]);
  assert.equal(encodeCategories(pairs), 'error=2+attachment=2048+logitem=3');
  assert.equal(encodeCategories([]), 'none');
  assert.deepEqual(decodeCategories('01796311215495415916-2446-000000_error=2+attachment=2048.envelope'), [
    ['error', 2],
    ['attachment', 2048],
  ]);
  assert.deepEqual(decodeCategories('000000000001_none.envelope'), []);
});

test('the DSN behind @sentry/core\'s envelope URL', () => {
  assert.equal(
    dsnFromUrl('https://sw.example.com:8443/base/api/42/envelope/?sentry_version=7&sentry_key=abc&sentry_client=x'),
    'https://abc@sw.example.com:8443/base/42',
  );
  assert.equal(dsnFromUrl('https://tunnel.example.com/errors'), undefined);
});

test('envelopes: @sentry/core\'s shape to bytes and back, binary attachments included', () => {
  const binary = Buffer.from([0x0a, 0x00, 0xff, 0x0a, 0x41]);
  const bytes = serialize(
    fromSentry([
      { event_id: 'a'.repeat(32), sent_at: '2000-01-01T00:00:00.000Z' },
      [
        [{ type: 'event' }, { event_id: 'a'.repeat(32), message: 'line one\nline two' }],
        [{ type: 'attachment', filename: 'x.bin' }, binary],
        [{ type: 'transaction' }, { spans: [{}, {}, {}] }],
        [{ type: 'log', item_count: 2 }, '{"items":[1,2]}'],
      ],
    ]),
  );
  const envelope = parse(bytes);
  assert.equal(envelope.items.length, 4);
  assert.deepEqual(JSON.parse(envelope.items[0].payload.toString()).message, 'line one\nline two');
  assert.deepEqual(envelope.items[1].payload, binary);
  assert.equal(envelope.items[1].headers.length, 5);
  assert.deepEqual(envelope.items.map(itemQuantities), [
    [['error', 1]],
    [['attachment', 5]],
    [
      ['transaction', 1],
      ['span', 4],
    ],
    [
      ['log_item', 2],
      ['log_byte', 15],
    ],
  ]);
  assert.deepEqual(parse(serialize(envelope)), envelope);
  // As @sentry/core writes JSON items: no length, each payload up to its newline.
  const plain = parse(Buffer.from('{"event_id":"b"}\n{"type":"event"}\n{"x":1}\n{"type":"session"}\n{"y":2}\n'));
  assert.deepEqual(
    plain.items.map((item) => item.payload.toString()),
    ['{"x":1}', '{"y":2}'],
  );
  const fresh = JSON.parse(withSentAtNow(bytes).toString().split('\n')[0]).sent_at;
  assert.ok(Date.now() - Date.parse(fresh) < 60_000, fresh);
  assert.deepEqual(parse(withSentAtNow(bytes)).items, envelope.items);
});

test('X-Sentry-Rate-Limits and Retry-After', () => {
  assert.deepEqual(parseRateLimits('60:transaction;span:organization, 10::key, 5:metric_bucket:org:quota:other, 7:metric_bucket:org:q:custom'), [
    ['transaction', 60],
    ['span', 60],
    [null, 10],
    ['metric_bucket', 7],
  ]);
  assert.equal(parseRetryAfter('12'), 12);
  assert.equal(parseRetryAfter('999999'), 3600);
  assert.ok((parseRetryAfter(new Date(Date.now() + 30_000).toUTCString()) ?? 0) > 25);
  assert.equal(parseRetryAfter('soon'), undefined);
  let clock = 100;
  const limits = new RateLimits(() => clock);
  limits.update({ status: 200, retryAfter: undefined, rateLimits: '10:transaction:organization' });
  assert.equal(limits.remaining('transaction'), 10);
  assert.equal(limits.remaining('error'), 0);
  limits.update({ status: 429, retryAfter: '3', rateLimits: undefined });
  assert.equal(limits.remaining('error'), 3);
  assert.equal(limits.blocked(['error', 'transaction']), 10);
  clock = 104;
  assert.equal(limits.remaining('error'), 0);
  limits.update({ status: 429, retryAfter: undefined, rateLimits: undefined });
  assert.equal(limits.remaining('error'), 60, 'a bare 429 holds everything for 60 s');
});

test('backoff: base · 2ⁿ capped, each drawn between half and all of it', () => {
  const low = new Backoff(4, { base: 0.5, random: () => 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => low.next()), [0.25, 0.5, 1, 2, 2, 2]);
  const high = new Backoff(4, { base: 0.5, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [0.5, 1, 2, 4, 4]);
  high.reset();
  assert.equal(high.next(), 0.5);
});

const TIMINGS = { heartbeatSeconds: 0.05, staleLockSeconds: 30 };
const LINUX = existsSync('/proc/self/stat');

/**
 * A lock file as a process with `pid` (started at clock tick `start`) on this machine writes it.
 * @param {string} folder
 * @param {number} pid
 * @param {string} start
 */
function writeLock(folder, pid, start) {
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  writeFileSync(join(folder, LOCK_NAME), JSON.stringify({ pid, start, host: hostname(), boot, token: 'other' }) + '\n');
}

/** @param {number} pid */
function startOf(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
}

test('the sender lock: one holder; released on request; a dead holder\'s lock is taken over', { skip: !LINUX && 'needs /proc' }, async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const a = new SenderLock(dir, TIMINGS);
  const b = new SenderLock(dir, TIMINGS);
  t.after(() => {
    a.release();
    b.release();
  });
  assert.equal(await a.tryAcquire(), true);
  assert.equal(await b.tryAcquire(), false);
  a.release();
  assert.equal(existsSync(join(dir, LOCK_NAME)), false);
  assert.equal(await b.tryAcquire(), true);
  b.release();

  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
  t.after(() => child.kill('SIGKILL'));
  const pid = /** @type {number} */ (child.pid);
  await sleep(100);
  writeLock(dir, pid, startOf(pid));
  assert.equal(await a.tryAcquire(), false, 'a live holder keeps its lock');
  writeLock(dir, pid, String(Number(startOf(pid)) + 1));
  assert.equal(await a.tryAcquire(), true, 'the pid is another process now: the holder is gone');
  a.release();

  writeLock(dir, pid, startOf(pid));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(await a.tryAcquire(), true, 'the holder died');
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_NAME), 'utf8')).token, a.me.token);
});

test('the sender lock: released (as at exit) during an attempt, it leaves no file of that attempt behind', async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const a = new SenderLock(dir, TIMINGS);
  const b = new SenderLock(dir, TIMINGS);
  t.after(() => a.release());
  assert.equal(await a.tryAcquire(), true);
  const attempt = b.tryAcquire();
  const temp = join(dir, `.tmp-lock-${process.pid}-${b.me.token}`);
  // Synchronously, as an exit listener runs: nothing else of this process happens after it.
  const deadline = performance.now() + 5000;
  while (!existsSync(temp) && performance.now() < deadline);
  assert.ok(existsSync(temp), 'the attempt wrote its file');
  b.release();
  assert.equal(existsSync(temp), false);
  assert.equal(await attempt, false);
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_NAME), 'utf8')).token, a.me.token, 'the holder keeps its lock');
});

test('the sender lock: one not refreshed for staleLockSeconds is taken over; its holder notices', async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const a = new SenderLock(dir, TIMINGS);
  const b = new SenderLock(dir, { heartbeatSeconds: 0.05, staleLockSeconds: 1 });
  t.after(() => {
    a.release();
    b.release();
  });
  assert.equal(await a.tryAcquire(), true);
  await sleep(150);
  assert.equal(await b.tryAcquire(), false, 'refreshed by its heartbeat');
  a.lose(); // as if its process froze: no more heartbeats...
  await a.beating;
  a.held = true; // ...but it still believes it holds the lock
  const past = new Date(Date.now() - 5000);
  utimesSync(join(dir, LOCK_NAME), past, past);
  assert.equal(await b.tryAcquire(), true, 'stale');
  await a.beat();
  assert.equal(a.held, false, 'the old holder sees the lock is not its own any more');
});

for (const fsync of [false, true]) {
  test(`send() (fsync ${fsync}): the file is written off the event loop, and in place when send() resolves`, async (t) => {
    const { spool, folder } = offlineSpool(t, { fsync });
    const ids = [eventId(), eventId(), eventId()];
    const sent = ids.map((id) => spool.send(errorEnvelope(id)));
    assert.deepEqual(transport.spoolFiles(folder), [], 'send() returned before any file was written');
    assert.ok(spool.state().spooledBytes > 0, 'what is being written counts in the spool size at once');
    const before = spool.state().spooledBytes;
    for (const [i, promise] of sent.entries()) {
      assert.deepEqual(await promise, {});
      assert.ok(spooledIds(folder).includes(ids[i]), `envelope ${i} is on disk when its send() resolves`);
    }
    assert.equal(transport.spoolFiles(folder).length, 3);
    assert.deepEqual(readdirSync(folder).filter((name) => name.startsWith('.tmp-') && name.endsWith('.envelope')), []);
    assert.equal(spool.state().spooledBytes, before);
  });
}

test('the size bound counts envelopes still being written: evicting one leaves no file of it', async (t) => {
  const size = serialize(fromSentry(errorEnvelope())).length;
  const { spool, folder } = offlineSpool(t, { spoolMaxBytes: 2 * size + 10, sendClientReports: false });
  const ids = [eventId(), eventId(), eventId()];
  // In one turn: the third makes room by evicting the first, whose write has not completed.
  const sent = ids.map((id) => spool.send(errorEnvelope(id)));
  assert.equal(spool.state().spooledBytes, 2 * size);
  await Promise.all(sent);
  await sleep(50); // the evicted write's own clean-up
  assert.deepEqual(spooledIds(folder), ids.slice(1));
  assert.deepEqual(readdirSync(folder).filter((name) => name.startsWith('.tmp-') && name.endsWith('.envelope')), []);
  assert.equal(spool.state().spooledBytes, 2 * size);
});
