// Processes that end badly — kill -9, an uncaught exception, an unhandled rejection, SIGTERM in the middle of a
// burst — and the next process on the same spool, which sends what they left. Real @sentry/node in each child.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { spoolFiles } from '../src/transport/index.js';
import { LOCK_NAME } from '../src/transport/lock.js';
import { sleep, spooledIds } from './support/envelopes.js';
import { spoolSetUp } from './support/processes.js';

const setUp = spoolSetUp;


for (const stackwatch of [false, true]) {
  const via = stackwatch ? 'Stackwatch.init' : '@sentry/node';
  test(`kill -9 one second after a capture (${via}): the next process on the spool sends it`, async (t) => {
    const { recorder, folder, start, replay } = await setUp(t, { down: true });
    const child = start({ scenario: 'capture', count: 1, stackwatch });
    await child.waitFor(() => child.captured.length === 1, 'the capture');
    await sleep(1000);
    child.proc.kill('SIGKILL');
    assert.equal((await child.exited).signal, 'SIGKILL');
    assert.deepEqual(spooledIds(folder), child.captured);
    assert.ok(existsSync(join(folder, LOCK_NAME)), 'the dead sender left its lock behind');

    await recorder.up();
    const next = await replay();
    assert.equal(next.messages.at(-1).flushed, true);
    assert.equal(next.state.sender, true, 'the next process took the dead one\'s lock over');
    assert.deepEqual(recorder.eventIds, child.captured);
    assert.deepEqual(spoolFiles(folder), []);
  });
}

test('an uncaught exception and an unhandled rejection: on disk before the process exits, sent at the next start', async (t) => {
  const { recorder, folder, start, replay } = await setUp(t, { down: true });
  const children = [start({ scenario: 'uncaught' }), start({ scenario: 'unhandled' })];
  const ends = await Promise.all(children.map((child) => child.exited));
  assert.deepEqual(ends, [
    { code: 1, signal: null },
    { code: 1, signal: null },
  ]);
  const captured = children.flatMap((child) => child.captured);
  assert.equal(captured.length, 2);
  assert.deepEqual(spooledIds(folder).sort(), [...captured].sort());
  assert.match(children[0].stderr, /uncaught boom/);

  await recorder.up();
  await replay();
  assert.deepEqual(recorder.eventIds.sort(), [...captured].sort());
  const exceptions = recorder.events.map((event) => event.exception.values[0]);
  assert.deepEqual(exceptions.map((e) => e.value).sort(), ['uncaught boom', 'unhandled boom']);
  assert.deepEqual(spoolFiles(folder), []);
});

test('SIGTERM during a burst: the flush sends what it can in 2 s, the rest waits on disk; nothing is lost', async (t) => {
  // The server accepts 30 envelopes, then holds every answer: the flush cannot finish.
  const { recorder, folder, start, replay } = await setUp(t, {
    mode: (_request, index) => (index < 30 ? { status: 200 } : 'hang'),
  });
  const child = start({ scenario: 'burst', count: 600 });
  await child.waitFor(() => child.captured.length >= 50, 'the burst');
  child.proc.kill('SIGTERM');
  const atSignal = child.captured.length;
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.ok(atSignal < 600, 'the signal came during the burst');
  assert.equal(child.messages.find((m) => 'flushed' in m)?.flushed, false);
  const left = spoolFiles(folder).length;
  assert.equal(recorder.accepted, 30);
  assert.equal(left, child.captured.length - 30, 'everything not accepted is on disk');

  recorder.setMode({ status: 200 });
  await replay();
  assert.equal(new Set(recorder.eventIds).size, recorder.eventIds.length, 'an event arrived twice');
  assert.deepEqual([...recorder.eventIds].sort(), [...child.captured].sort());
});

test('SIGTERM during a burst, through Stackwatch.init: its handler flushes, the process ends by the signal, nothing is lost', async (t) => {
  const { recorder, folder, start, replay } = await setUp(t, {
    mode: (_request, index) => (index < 30 ? { status: 200 } : 'hang'),
  });
  const child = start({ scenario: 'burst', count: 600, stackwatch: true });
  await child.waitFor(() => child.captured.length >= 50, 'the burst');
  child.proc.kill('SIGTERM');
  const atSignal = child.captured.length;
  assert.deepEqual(await child.exited, { code: null, signal: 'SIGTERM' }, 'the signal is not swallowed');
  assert.ok(atSignal < 600, 'the signal came during the burst');
  assert.equal(recorder.accepted, 30);
  assert.equal(spoolFiles(folder).length, child.captured.length - 30, 'everything not accepted is on disk');

  recorder.setMode({ status: 200 });
  await replay();
  assert.equal(new Set(recorder.eventIds).size, recorder.eventIds.length, 'an event arrived twice');
  assert.deepEqual([...recorder.eventIds].sort(), [...child.captured].sort());
});

test('process.exit(0) in the same turn as the last send(): every envelope is on disk, and the next process sends it', async (t) => {
  const { recorder, folder, start, replay } = await setUp(t, { down: true });
  const count = 40;
  const child = start({ scenario: 'exit', count });
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.equal(child.captured.length, count);
  assert.equal(child.state.durable, true);
  assert.deepEqual(spooledIds(folder).sort(), [...child.captured].sort());
  assert.deepEqual(
    readdirSync(folder).filter((name) => name.startsWith('.tmp-exit-')),
    [],
    'the exit-time writes left no temporary file',
  );

  await recorder.up();
  await replay();
  assert.equal(new Set(recorder.eventIds).size, recorder.eventIds.length, 'an event arrived twice');
  assert.deepEqual([...recorder.eventIds].sort(), [...child.captured].sort());
  assert.deepEqual(spoolFiles(folder), []);
});
