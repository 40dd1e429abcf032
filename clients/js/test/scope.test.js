import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as Stackwatch from '../src/index.js';
import { memoryTransport } from './support/memory.js';

const memory = memoryTransport();
Stackwatch.init({ dsn: 'http://public@127.0.0.1:9/1', component: 'orchestrator', transport: memory.transport });

/** @param {string} message */
async function eventOf(message) {
  await Stackwatch.flush(2000);
  const found = memory.events().filter((e) => (e.exception?.values?.at(-1)?.value ?? e.message) === message);
  assert.equal(found.length, 1, `one event for ${message}, got ${found.length}`);
  return found[0];
}

const RUN = { workflowId: 'wf-1', runId: 'run-1', tenant: 'acme', workflowVersion: 3, queue: 'steps', jobId: 'j-9' };

test('workflowScope sets the snake_case tags, the workflow context and a breadcrumb', async () => {
  Stackwatch.workflowScope(RUN, () => {
    Stackwatch.stepScope({ stepId: 'fetch', stepType: 'http', attempt: 2 }, () => {
      Stackwatch.captureException(new Error('in step'));
    });
  });
  const event = await eventOf('in step');
  assert.equal(event.tags.component, 'orchestrator');
  assert.deepEqual(
    Object.fromEntries(Stackwatch.TAG_KEYS.map((k) => [k, event.tags[k]])),
    { workflow_id: 'wf-1', workflow_version: '3', run_id: 'run-1', step_id: 'fetch', step_type: 'http', attempt: '2', tenant: 'acme' },
  );
  assert.deepEqual(event.contexts.workflow, {
    workflow_id: 'wf-1', workflow_version: '3', run_id: 'run-1', step_id: 'fetch', step_type: 'http', attempt: '2',
    tenant: 'acme', queue: 'steps', job_id: 'j-9',
  });
  const crumbs = event.breadcrumbs.map((/** @type {any} */ c) => c.message);
  assert.ok(crumbs.includes('run run-1 of workflow wf-1 started'), crumbs.join('|'));
  assert.ok(crumbs.includes('step fetch (http) attempt 2 started'), crumbs.join('|'));
});

test('a step scope does not inherit the enclosing step, a nested workflow scope inherits the run', async () => {
  Stackwatch.stepScope({ ...RUN, stepId: 'a', stepType: 'http', attempt: 1 }, () => {
    Stackwatch.stepScope({ stepId: 'b' }, () => Stackwatch.captureMessage('second step'));
  });
  const event = await eventOf('second step');
  assert.equal(event.tags.step_id, 'b');
  assert.equal(event.tags.step_type, undefined);
  assert.equal(event.tags.attempt, undefined);
  assert.equal(event.tags.run_id, 'run-1');
});

test('concurrent async flows never see each other\'s workflow', async () => {
  /** @param {string} run @param {number} wait */
  const job = (run, wait) =>
    Stackwatch.workflowScope({ runId: run }, async () => {
      await new Promise((r) => setTimeout(r, wait));
      assert.equal(Stackwatch.currentWorkflow().run_id, run);
      Stackwatch.captureMessage(`concurrent ${run}`);
    });
  await Promise.all([job('r-a', 30), job('r-b', 5), job('r-c', 15)]);
  for (const run of ['r-a', 'r-b', 'r-c']) {
    const event = await eventOf(`concurrent ${run}`);
    assert.equal(event.tags.run_id, run);
  }
  assert.deepEqual(Stackwatch.currentWorkflow(), {});
});

test('an error escaping a scope keeps its context when reported later, outside it', async () => {
  let escaped;
  try {
    await Stackwatch.workflowScope({ runId: 'run-late', stepId: 'late' }, async () => {
      await Promise.resolve();
      throw new Error('escaped async');
    });
  } catch (error) {
    escaped = error;
  }
  assert.deepEqual(Stackwatch.workflowOfError(escaped), { run_id: 'run-late', step_id: 'late' });
  try {
    Stackwatch.workflowScope({ runId: 'run-sync' }, () => {
      throw new TypeError('escaped sync');
    });
  } catch (error) {
    Stackwatch.workflowScope({ runId: 'elsewhere' }, () => Stackwatch.captureException(error));
  }
  Stackwatch.captureException(new Error('wrapper', { cause: escaped }));
  Stackwatch.captureException(escaped);
  const late = await eventOf('escaped async');
  const wrapper = await eventOf('wrapper');
  assert.equal(wrapper.tags.run_id, 'run-late', 'found through the cause chain');
  assert.equal(late.tags.run_id, 'run-late');
  assert.equal(late.contexts.workflow.step_id, 'late');
  const sync = await eventOf('escaped sync');
  assert.equal(sync.tags.run_id, 'run-sync');
});

test('wrapJobHandler reports a failing job once, with its context, and swallows or rethrows', async () => {
  /** @param {{ id: string, run: string }} job */
  const toContext = (job) => ({ runId: job.run, jobId: job.id, queue: 'http' });
  const failing = Stackwatch.wrapJobHandler(async (/** @type {any} */ job) => {
    throw new Error(`job ${job.id} failed`);
  }, toContext);
  assert.equal(await failing({ id: 'j1', run: 'r-j' }), undefined);
  const strict = Stackwatch.wrapJobHandler(() => {
    throw new Error('strict job failed');
  }, () => ({ runId: 'r-s' }), { rethrow: true });
  const thrown = await strict().catch((e) => e);
  assert.equal(thrown.message, 'strict job failed');
  Stackwatch.captureException(thrown); // reported already: not a second time
  const event = await eventOf('job j1 failed');
  assert.equal(event.tags.run_id, 'r-j');
  assert.equal(event.contexts.workflow.job_id, 'j1');
  assert.equal(event.exception.values.at(-1).mechanism.type, 'stackwatch.job');
  assert.equal(event.exception.values.at(-1).mechanism.handled, false);
  const strictEvent = await eventOf('strict job failed');
  assert.equal(strictEvent.tags.run_id, 'r-s');
  assert.equal(await Stackwatch.wrapJobHandler(() => 7, () => ({}))(), 7);
  const badContext = Stackwatch.wrapJobHandler(() => 'ran', () => {
    throw new Error('no context');
  });
  assert.equal(await badContext(), 'ran');
});

test('two runs failing the same way are both reported (no Dedupe), one error object only once', async () => {
  const fail = () => Stackwatch.captureException(new Error('same failure'));
  Stackwatch.workflowScope({ runId: 'twin-1' }, fail);
  Stackwatch.workflowScope({ runId: 'twin-2' }, fail);
  await Stackwatch.flush(2000);
  const twins = memory.events().filter((e) => e.exception?.values?.at(-1)?.value === 'same failure');
  assert.deepEqual(twins.map((e) => e.tags.run_id), ['twin-1', 'twin-2']);
});
