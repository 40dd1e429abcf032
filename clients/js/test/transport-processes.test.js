// The spool transport under @sentry/node in processes of their own (test/support/child.js): an outage, two processes
// on one spool, and a process whose event loop runs empty. Crashes and signals are in transport-crashes.test.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { spoolFiles } from '../src/transport/index.js';
import { FAST } from './support/envelopes.js';
import { runChild, spoolSetUp, startChild } from './support/processes.js';

/** @typedef {ReturnType<typeof startChild>} Child */

const setUp = spoolSetUp;

/**
 * @param {string[]} received
 * @param {string[]} captured
 */
function assertEachOnce(received, captured) {
  assert.equal(new Set(received).size, received.length, 'an event arrived twice');
  assert.deepEqual([...received].sort(), [...captured].sort());
}

/**
 * The next message of `child` that has `key`, from those after the `skip` first (by default: those so far).
 * @param {Child} child
 * @param {string} key
 * @param {number} [skip]
 */
async function answer(child, key, skip = child.messages.length) {
  await child.waitFor((messages) => messages.slice(skip).some((m) => key in m), `its "${key}"`);
  return child.messages.slice(skip).find((m) => key in m);
}

/**
 * Ask `child` for its "state" or "sender" until `predicate` holds for the answer (for at most 10 s).
 * @param {Child} child
 * @param {'state' | 'sender'} what
 * @param {(value: any) => boolean} predicate
 * @param {string} description
 */
async function askUntil(child, what, predicate, description) {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const skip = child.messages.length;
    child.tell(what);
    if (predicate((await answer(child, what, skip))[what])) return;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Tell `child` to capture `n` errors; resolves when the transport has them (in the spool, or sent already).
 * @param {Child} child
 * @param {number} n
 */
async function capture(child, n) {
  const skip = child.messages.length;
  child.tell(`capture ${n}`);
  await answer(child, 'spooled', skip);
}

for (const stackwatch of [false, true]) {
  const via = stackwatch ? 'Stackwatch.init, 500 in one turn of the event loop' : '@sentry/node';
  test(`an outage (${via}): 500 errors captured while the server is down all arrive when it is back, each once`, async (t) => {
    const { recorder, folder, start } = await setUp(t, { down: true });
    const child = start({ scenario: 'capture', count: 500, stackwatch });
    await child.waitFor(() => child.captured.length === 500, '500 captures');
    await recorder.waitFor(() => spoolFiles(folder).length === 500, '500 files in the spool');
    await child.waitFor(() => child.stderr.includes('cannot reach'), 'a failed attempt');
    assert.match(child.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/1\/envelope\/ .*envelopes stay in the spool/);
    assert.equal(recorder.requests.length, 0);

    await recorder.up();
    await recorder.waitFor(() => recorder.eventIds.length >= 500, 'the 500 events', 20_000);
    // The last answers may still be on their way to the child: ask until its spool is empty.
    await askUntil(child, 'state', (state) => state.spooledBytes === 0, 'an empty spool');
    assertEachOnce(recorder.eventIds, child.captured);
    assert.deepEqual(spoolFiles(folder), []);
  });
}

test('two processes on one spool: exactly one sends, its files and the other\'s, each once', async (t) => {
  const { recorder, start } = await setUp(t);
  const children = [start({ scenario: 'capture', count: 100 }), start({ scenario: 'capture', count: 100 })];
  await Promise.all(children.map((child) => child.waitFor(() => child.captured.length === 100, '100 captures')));
  await recorder.waitFor(() => recorder.eventIds.length >= 200, 'the 200 events');
  // Asked while both live: once one exits, the other may take the lock over, and its state says so.
  /** @type {any[]} */
  const states = [];
  for (const child of children) {
    const skip = child.messages.length;
    child.tell('state');
    states.push((await answer(child, 'state', skip)).state);
  }
  const [a, b] = states;
  assert.deepEqual([a.sender, b.sender].sort(), [false, true], 'one holds the sender lock');
  const senderChild = a.sender ? children[0] : children[1];
  // The recorder counts a request when it answers; the sender counts it when the answer is back.
  await askUntil(senderChild, 'state', (state) => state.sent === recorder.accepted, 'the sender counting every answer');
  assert.equal((a.sender ? b : a).sent, 0, 'the other process only wrote files');
  await Promise.all(children.map((child) => child.stop()));
  assertEachOnce(recorder.eventIds, children.flatMap((child) => child.captured));
});

test('the sender exits while another process flushes: that one takes the lock at once and sends every file, each once', async (t) => {
  const { recorder, folder, start } = await setUp(t, { mode: { status: 503 } });
  // The sender: a 503 holds its files back for at least 15 s, so they are still in the spool when it exits.
  const holder = start({ scenario: 'capture', count: 0, settings: { retryBaseSeconds: 30, retryMaxSeconds: 30 } });
  await askUntil(holder, 'state', (state) => state.sender, 'the holder holding the lock');
  // The other tries the lock at its start and fails; it would try again only in 60 s unless a flush hurries it.
  const other = start({ scenario: 'capture', count: 0, settings: { lockRetrySeconds: 60 } });
  await askUntil(other, 'sender', (sender) => !sender.running && sender.next.seconds === 60, 'a failed lock attempt');
  await capture(holder, 3);
  await recorder.waitFor(() => recorder.requests.some((request) => request.status === 503), 'a refused attempt');
  await capture(other, 3);
  await recorder.waitFor(() => spoolFiles(folder).length === 6, 'the files in the spool');

  recorder.setMode({ status: 200 });
  const skip = other.messages.length;
  other.tell('flush 8000');
  // Its flush has tried the lock (the holder lives): it is to try again soon, not in lockRetrySeconds.
  await askUntil(other, 'sender', (sender) => !sender.running && sender.next.seconds < 60, 'a lock attempt of the flush');
  holder.tell('exit');
  assert.deepEqual(await holder.exited, { code: 0, signal: null });
  const { flushed, state } = await answer(other, 'flushed', skip);
  assert.equal(flushed, true, 'the flush saw every file sent');
  assert.equal(state.sender, true);
  assertEachOnce(recorder.eventIds, [...holder.captured, ...other.captured]);
  assert.deepEqual(spoolFiles(folder), []);
});

test("the sender's flush waits for another process's files: it sends them then, not at its next listing", async (t) => {
  const { recorder, folder, start } = await setUp(t);
  // The sender lists the folder for other processes' files only every 60 s, and recounts it as rarely.
  const holder = start({ scenario: 'capture', count: 0, settings: { pollIntervalSeconds: 60, rescanSeconds: 60 } });
  await askUntil(holder, 'state', (state) => state.sender, 'the holder holding the lock');
  await askUntil(holder, 'sender', (sender) => !sender.running && sender.next.seconds === 60, 'its first listing done');
  const other = start({ scenario: 'capture', count: 0 });
  await capture(other, 3);
  await recorder.waitFor(() => spoolFiles(folder).length === 3, 'the files in the spool');
  await capture(holder, 2);

  holder.tell('flush 5000');
  assert.equal((await answer(holder, 'flushed')).flushed, true, "the sender's flush saw the other's files sent");
  other.tell('flush 5000');
  assert.equal((await answer(other, 'flushed')).flushed, true);
  assertEachOnce(recorder.eventIds, [...holder.captured, ...other.captured]);
  assert.equal(recorder.eventIds.length, 5);
  assert.deepEqual(spoolFiles(folder), []);
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
  await recorder.waitFor(() => spoolFiles(folder).length === 2, 'the files in the spool');
});

test('what @sentry/node drops itself (recordDroppedEvent) reaches the server in its client report, via the spool', async (t) => {
  const { recorder, start } = await setUp(t);
  const child = start({ scenario: 'unsent', count: 3, sentry: { sampleRate: 0 } });
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.equal(child.messages.at(-1).flushed, true);
  assert.deepEqual(recorder.eventIds, []);
  assert.deepEqual(recorder.discarded, [{ reason: 'sample_rate', category: 'error', quantity: 3 }]);
});
