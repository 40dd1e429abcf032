// The spool transport under @sentry/node in processes of their own (test/support/child.js): an outage, two processes
// on one spool, and a process whose event loop runs empty. Crashes and signals are in transport-crashes.test.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { folderFor, spoolFiles } from '../src/transport/index.js';
import { FAST, tempDir } from './support/envelopes.js';
import { runChild, startChild } from './support/processes.js';
import { startRecorder } from './support/recorder.js';

/**
 * @param {import('node:test').TestContext} t
 * @param {Parameters<typeof startRecorder>[0]} [options]
 */
async function setUp(t, options) {
  const recorder = await startRecorder(options);
  const { dir, remove } = tempDir();
  /** @type {ReturnType<typeof startChild>[]} */
  const children = [];
  t.after(async () => {
    for (const child of children) child.proc.kill('SIGKILL');
    await recorder.close();
    remove();
  });
  /** @param {Omit<import('./support/processes.js').ChildConfig, 'dsn'>} config */
  const start = (config) => {
    const child = startChild({ dsn: recorder.dsn(), ...config, settings: { ...FAST, spoolDir: dir, ...config.settings } });
    children.push(child);
    return child;
  };
  return { recorder, dir, folder: folderFor(recorder.dsn(), dir), start };
}

/**
 * @param {string[]} received
 * @param {string[]} captured
 */
function assertEachOnce(received, captured) {
  assert.equal(new Set(received).size, received.length, 'an event arrived twice');
  assert.deepEqual([...received].sort(), [...captured].sort());
}

test('an outage: 500 errors captured while the server is down all arrive when it is back, each once', async (t) => {
  const { recorder, folder, start } = await setUp(t, { down: true });
  const child = start({ scenario: 'capture', count: 500 });
  await child.waitFor(() => child.captured.length === 500, '500 captures');
  await recorder.waitFor(() => spoolFiles(folder).length === 500, '500 files in the spool');
  await child.waitFor(() => child.stderr.includes('cannot reach'), 'a failed attempt');
  assert.match(child.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/1\/envelope\/ .*envelopes stay in the spool/);
  assert.equal(recorder.requests.length, 0);

  await recorder.up();
  await recorder.waitFor(() => recorder.eventIds.length >= 500, 'the 500 events', 20_000);
  child.tell('state');
  await child.waitFor(() => child.state?.spooledBytes === 0, 'an empty spool');
  assertEachOnce(recorder.eventIds, child.captured);
  assert.deepEqual(spoolFiles(folder), []);
});

test('two processes on one spool: exactly one sends, its files and the other\'s, each once', async (t) => {
  const { recorder, start } = await setUp(t);
  const children = [start({ scenario: 'capture', count: 100 }), start({ scenario: 'capture', count: 100 })];
  await Promise.all(children.map((child) => child.waitFor(() => child.captured.length === 100, '100 captures')));
  await recorder.waitFor(() => recorder.eventIds.length >= 200, 'the 200 events');
  await Promise.all(children.map((child) => child.stop()));

  const [a, b] = children.map((child) => child.state);
  assert.ok(a && b, 'both reported their state');
  assert.deepEqual([a.sender, b.sender].sort(), [false, true], 'one holds the sender lock');
  const sender = a.sender ? a : b;
  const other = a.sender ? b : a;
  assert.equal(other.sent, 0, 'the other process only wrote files');
  assert.equal(sender.sent, recorder.accepted);
  assertEachOnce(recorder.eventIds, children.flatMap((child) => child.captured));
});

test('a process whose event loop runs empty sends what it captured before it ends (exitFlushSeconds)', async (t) => {
  const { recorder, folder, start } = await setUp(t);
  const child = start({ scenario: 'natural', count: 3, settings: { exitFlushSeconds: 5 } });
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assertEachOnce(recorder.eventIds, child.captured);
  assert.equal(child.captured.length, 3);
  assert.deepEqual(spoolFiles(folder), []);
});

test('the transport never keeps a process alive: with the server away it ends after its exit flush, files kept', async (t) => {
  const { recorder, dir, folder } = await setUp(t, { down: true });
  const { code, signal, child } = await runChild({
    dsn: recorder.dsn(),
    scenario: 'natural',
    count: 2,
    settings: { ...FAST, spoolDir: dir, exitFlushSeconds: 0.3 },
  });
  assert.deepEqual({ code, signal }, { code: 0, signal: null });
  assert.equal(child.captured.length, 2);
  assert.equal(spoolFiles(folder).length, 2);
});

test('what @sentry/node drops itself (recordDroppedEvent) reaches the server in its client report, via the spool', async (t) => {
  const { recorder, start } = await setUp(t);
  const child = start({ scenario: 'unsent', count: 3, sentry: { sampleRate: 0 } });
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.equal(child.messages.at(-1).flushed, true);
  assert.deepEqual(recorder.eventIds, []);
  assert.deepEqual(recorder.discarded, [{ reason: 'sample_rate', category: 'error', quantity: 3 }]);
});
