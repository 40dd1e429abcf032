// The spool transport in this process, against the recording server: what reaches the disk and when, what reaches
// the server, and what each kind of answer does (retries, rate limits, permanent refusals, the size bound, the
// memory fallback). The scenarios that need a process of their own are in transport-processes.test.js.

import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { fromSentry, serialize } from '../src/transport/envelope.js';
import { folderFor, spoolFiles } from '../src/transport/index.js';
import { errorEnvelope, eventId, openTransport, sessionEnvelope, sleep, tempDir, transactionEnvelope } from './support/envelopes.js';
import { startRecorder } from './support/recorder.js';

/**
 * A recorder, a spool directory and transports on them, all cleaned up after the test.
 * @param {import('node:test').TestContext} t
 * @param {Parameters<typeof startRecorder>[0]} [recorderOptions]
 */
async function setUp(t, recorderOptions) {
  const recorder = await startRecorder(recorderOptions);
  const { dir, remove } = tempDir();
  /** @type {import('../src/transport/index.js').SpoolTransport[]} */
  const transports = [];
  t.after(async () => {
    for (const transport of transports) transport.stop();
    await recorder.close();
    remove();
  });
  const folder = folderFor(recorder.dsn(), dir);
  /** @param {import('../src/transport/index.js').SpoolSettings} [settings] */
  const open = (settings = {}) => {
    const transport = openTransport(recorder.envelopeUrl(), { spoolDir: dir, ...settings });
    transports.push(transport);
    return transport;
  };
  return { recorder, dir, folder, open };
}

test('an envelope is in its file when send() resolves, and is sent from there', async (t) => {
  const { recorder, folder, open } = await setUp(t, { down: true });
  captureWarnings(t);
  const transport = open();
  const id = eventId();
  assert.deepEqual(await transport.send(errorEnvelope(id)), {});
  const files = spoolFiles(folder);
  assert.equal(files.length, 1);
  assert.match(files[0], /^\d{20}-\d+-000000_error\.envelope$/);
  assert.ok(readFileSync(join(folder, files[0]), 'utf8').includes(id));
  assert.equal(readFileSync(join(folder, '.dsn'), 'utf8'), recorder.dsn() + '\n');

  await recorder.up();
  assert.equal(await transport.flush(5000), true);
  assert.deepEqual(recorder.eventIds, [id]);
  assert.deepEqual(spoolFiles(folder), []);
  const sentAt = Date.parse(recorder.envelopes[0].headers.sent_at);
  assert.ok(sentAt > Date.parse('2020-01-01'), 'sent_at is the time of sending');
});

test('fsync: true writes the same files (each flushed to the disk with its folder) and sends them', async (t) => {
  const { recorder, folder, open } = await setUp(t, { down: true });
  captureWarnings(t);
  const transport = open({ fsync: true });
  const id = eventId();
  await transport.send(errorEnvelope(id));
  assert.equal(spoolFiles(folder).length, 1);
  assert.ok(readFileSync(join(folder, spoolFiles(folder)[0]), 'utf8').includes(id));
  await recorder.up();
  assert.equal(await transport.flush(5000), true);
  assert.deepEqual(recorder.eventIds, [id]);
});

test('bodies of 32 KiB and more go gzip-compressed, smaller ones as they are; compress: false never compresses', async (t) => {
  const { recorder, open } = await setUp(t);
  const big = eventId();
  const [headers, [[itemHeaders, event]]] = errorEnvelope(big);
  const large = /** @type {any} */ ([headers, [[itemHeaders, { ...(/** @type {object} */ (event)), extra: { blob: 'y'.repeat(40_000) } }]]]);
  const transport = open();
  transport.send(errorEnvelope());
  transport.send(large);
  assert.equal(await transport.flush(5000), true);
  transport.stop();
  const plain = open({ compress: false });
  plain.send(large);
  assert.equal(await plain.flush(5000), true);
  assert.deepEqual(
    recorder.requests.map((r) => r.headers['content-encoding']),
    [undefined, 'gzip', undefined],
  );
  assert.equal(recorder.events[1].extra.blob.length, 40_000);
  assert.equal(recorder.eventIds[1], big);
});

test('send() does not wait for the network: it resolves while the server holds its answer', async (t) => {
  const { recorder, folder, open } = await setUp(t, { mode: 'hang' });
  const transport = open();
  await transport.send(errorEnvelope());
  await recorder.waitFor(() => recorder.requests.length === 1, 'the request that hangs');
  const answered = await Promise.race([transport.send(errorEnvelope()).then(() => 'resolved'), sleep(3000).then(() => 'waiting')]);
  assert.equal(answered, 'resolved');
  assert.equal(spoolFiles(folder).length, 2, 'both wait in the spool: the first is not answered yet');
});

test('5xx answers are retried with growing pauses until one is accepted; the envelope arrives once', async (t) => {
  const { recorder, folder, open } = await setUp(t, {
    mode: (_request, index) => ({ status: index < 3 ? 500 : 200 }),
  });
  const transport = open({ retryBaseSeconds: 0.1, retryMaxSeconds: 5 });
  const id = eventId();
  transport.send(errorEnvelope(id));
  assert.equal(await transport.flush(10_000), true);
  assert.deepEqual(
    recorder.requests.map((r) => r.status),
    [500, 500, 500, 200],
  );
  assert.deepEqual(recorder.eventIds, [id]);
  assert.deepEqual(spoolFiles(folder), []);
  // Pause n is drawn from [½, 1] × 0.1 s × 2ⁿ: at least 50, 100, 200 ms.
  const times = recorder.requests.map((r) => r.time);
  for (let n = 0; n < 3; n += 1) {
    const gap = times[n + 1] - times[n];
    assert.ok(gap >= 50 * 2 ** n - 5, `pause ${n} was ${gap.toFixed(1)} ms`);
  }
});

test('no answer at all (refused, then a hung request) is retried too', async (t) => {
  const { recorder, open } = await setUp(t, { down: true, mode: (_request, index) => (index === 0 ? 'hang' : { status: 200 }) });
  captureWarnings(t);
  const transport = open({ readTimeoutSeconds: 0.3 });
  const id = eventId();
  transport.send(errorEnvelope(id));
  await sleep(200); // refused meanwhile
  await recorder.up();
  assert.equal(await transport.flush(10_000), true);
  assert.equal(recorder.requests[0].status, null, 'the first request got no answer');
  assert.deepEqual(recorder.eventIds, [id]);
});

test('429 with Retry-After: nothing is sent before it ends', async (t) => {
  const { recorder, open } = await setUp(t, {
    mode: (_request, index) => (index === 0 ? { status: 429, headers: { 'Retry-After': '1' } } : { status: 200 }),
  });
  const transport = open();
  const first = eventId();
  const second = eventId();
  transport.send(errorEnvelope(first));
  await recorder.waitFor(() => recorder.requests.length === 1, 'the 429');
  transport.send(errorEnvelope(second));
  assert.equal(await transport.flush(10_000), true);
  const limited = recorder.requests[0].time;
  for (const request of recorder.requests.slice(1)) {
    assert.ok(request.time - limited >= 995, `a request ${(request.time - limited).toFixed(0)} ms after the 429`);
  }
  assert.deepEqual(recorder.eventIds, [first, second]);
});

test('X-Sentry-Rate-Limits applies per category: errors wait, sessions go, transactions are dropped and counted', async (t) => {
  const { recorder, folder, open } = await setUp(t, {
    mode: (_request, index) =>
      index === 0 ? { status: 429, headers: { 'X-Sentry-Rate-Limits': '1:error:key, 60:transaction:organization' } } : { status: 200 },
  });
  const transport = open({ clientReportIntervalSeconds: 60 });
  const first = eventId();
  transport.send(errorEnvelope(first));
  await recorder.waitFor(() => recorder.requests.length === 1, 'the 429');
  // The recorder has answered; wait until the transport has read the answer too.
  await recorder.waitFor(() => transport.limits.remaining('transaction') > 0, 'the limits known');
  const limited = recorder.requests[0].time;
  transport.send(sessionEnvelope());
  transport.send(transactionEnvelope());
  const second = eventId();
  transport.send(errorEnvelope(second));
  assert.equal(spoolFiles(folder).filter((name) => name.includes('transaction')).length, 0, 'the transaction is not spooled');

  await recorder.waitFor(() => recorder.accepted === 1, 'the session');
  assert.equal(recorder.envelopes[0].items[0].headers.type, 'session');
  assert.ok(recorder.requests[1].time - limited < 995, 'the session did not wait for the error limit');
  assert.equal(await transport.flush(10_000), true);
  const errors = recorder.requests.filter((r) => r.envelope?.items[0].headers.type === 'event');
  for (const request of errors.slice(1)) assert.ok(request.time - limited >= 995, 'an error went before its limit ended');
  assert.deepEqual(recorder.eventIds, [first, second]);
  assert.deepEqual(
    recorder.discarded.filter((d) => d.reason === 'ratelimit_backoff'),
    [
      { reason: 'ratelimit_backoff', category: 'span', quantity: 3 },
      { reason: 'ratelimit_backoff', category: 'transaction', quantity: 1 },
    ],
  );
});

for (const status of [400, 413]) {
  test(`a ${status} drops the envelope for good and counts it in a client report`, async (t) => {
    const { recorder, folder, open } = await setUp(t, {
      mode: (request) => ({ status: request.envelope?.items[0].headers.type === 'client_report' ? 200 : status }),
    });
    const warnings = captureWarnings(t);
    const transport = open();
    transport.send(errorEnvelope());
    await recorder.waitFor(() => recorder.requests.length === 1, 'the refusal');
    // The loss is counted when the transport reads the answer, with the warning: the flush reports what is counted.
    await recorder.waitFor(() => warnings.length === 1, 'the refusal read');
    assert.equal(await transport.flush(5000), true);
    assert.deepEqual(spoolFiles(folder), []);
    assert.deepEqual(recorder.eventIds, []);
    assert.equal(recorder.requests.filter((r) => r.status === status).length, 1, 'not retried');
    assert.deepEqual(recorder.discarded, [{ reason: 'send_error', category: 'error', quantity: 1 }]);
    assert.deepEqual(warnings, [`@stackwatch/sdk: the server refused an envelope with ${status}; dropping it`]);
  });
}

test('over spoolMaxBytes the oldest envelopes are deleted, and counted in a client report', async (t) => {
  const { recorder, folder, open } = await setUp(t, { down: true });
  captureWarnings(t);
  const size = serialize(fromSentry(errorEnvelope())).length; // every one of them has this size
  // Room for five, and for the client report (smaller than an event) that the flush writes.
  const bound = 6 * size - 1;
  const transport = open({ spoolMaxBytes: bound });
  const ids = Array.from({ length: 12 }, () => eventId());
  await Promise.all(ids.map((id) => transport.send(errorEnvelope(id))));
  const files = spoolFiles(folder);
  assert.equal(files.length, 5);
  assert.equal(transport.state().spooledBytes, 5 * size);

  await recorder.up();
  assert.equal(await transport.flush(10_000), true);
  assert.deepEqual(recorder.eventIds, ids.slice(-5), 'the newest five arrive, in order');
  assert.deepEqual(recorder.discarded, [{ reason: 'queue_overflow', category: 'error', quantity: 7 }]);
});

test('an envelope larger than the bound on its own is counted as lost at once', async (t) => {
  const { recorder, folder, open } = await setUp(t);
  const transport = open({ spoolMaxBytes: 1000 });
  const [headers, [[itemHeaders, event]]] = errorEnvelope();
  transport.send([headers, [[itemHeaders, { ...(/** @type {object} */ (event)), message: 'x'.repeat(1000) }]]]);
  assert.deepEqual(spoolFiles(folder), []);
  assert.equal(await transport.flush(5000), true);
  assert.deepEqual(recorder.discarded, [{ reason: 'queue_overflow', category: 'error', quantity: 1 }]);
});

test('an unwritable spool directory: one warning, envelopes kept in memory and sent', async (t) => {
  const { recorder, dir, open } = await setUp(t);
  const warnings = captureWarnings(t);
  const blocker = join(dir, 'a-file');
  writeFileSync(blocker, '');
  const transport = open({ spoolDir: join(blocker, 'spool') });
  const ids = [eventId(), eventId(), eventId()];
  for (const id of ids) transport.send(errorEnvelope(id));
  assert.equal(transport.state().durable, false);
  assert.equal(await transport.flush(5000), true);
  assert.deepEqual(recorder.eventIds, ids);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /cannot use the spool folder .*a-file.*; falling back to an in-memory queue \(not durable\)/);
});

test('a transport stopped while it sends does not warn about the step its stopping cut short', async (t) => {
  const { recorder, dir, open } = await setUp(t, { mode: 'hang' });
  const warnings = captureWarnings(t);
  const transport = open();
  transport.send(errorEnvelope(eventId()));
  await recorder.waitFor(() => recorder.requests.length > 0, 'the send');
  transport.stop(); // as a test's teardown, or a process shutting down: the spool folder may go right after
  rmSync(dir, { recursive: true, force: true });
  await sleep(300);
  assert.deepEqual(warnings, []);
});

test('a spool folder that stops being writable: the transport falls back to memory without losing the envelope', async (t) => {
  const { recorder, folder, open } = await setUp(t, { down: true });
  const warnings = captureWarnings(t);
  const transport = open();
  const first = eventId();
  await transport.send(errorEnvelope(first));
  rmSync(folder, { recursive: true });
  writeFileSync(folder, ''); // the folder's path is now a file: nothing can be written under it
  const second = eventId();
  assert.deepEqual(await transport.send(errorEnvelope(second)), {}, 'a failed write does not reject');
  assert.equal(transport.state().durable, false);
  await recorder.up();
  assert.equal(await transport.flush(5000), true);
  assert.deepEqual(recorder.eventIds, [second], 'the first went with its folder; the second was kept in memory');
  assert.equal(warnings.filter((w) => w.includes('falling back to an in-memory queue')).length, 1);
});

test('flush() with the server away resolves false at its timeout and leaves the files; flush(0) waits for the server', async (t) => {
  const { recorder, folder, open } = await setUp(t, { down: true });
  captureWarnings(t);
  const transport = open();
  transport.send(errorEnvelope());
  assert.equal(await transport.flush(200), false);
  assert.equal(spoolFiles(folder).length, 1);
  setTimeout(() => recorder.up(), 300);
  assert.equal(await transport.flush(0), true);
  assert.equal(recorder.eventIds.length, 1);
});

/**
 * Collect console.warn calls for the rest of the test.
 * @param {import('node:test').TestContext} t
 */
function captureWarnings(t) {
  /** @type {string[]} */
  const warnings = [];
  const original = console.warn;
  console.warn = (...args) => {
    warnings.push(args.join(' '));
  };
  t.after(() => {
    console.warn = original;
  });
  return warnings;
}
