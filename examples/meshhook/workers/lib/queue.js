// The job bus of the MeshHook workers: an EventEmitter, as in MeshHook, with publish(topic, job) and a consumer,
// queue.process(topic, handler), that runs each job in a Stackwatch workflow scope. A failing job is reported once,
// with its workflow, run, step, attempt and tenant, instead of being printed to stderr and forgotten.
//
// In a process started by the broker (lib/broker.js, with an IPC channel) the jobs travel through the parent, so
// the orchestrator and the executor run as separate processes, each with its own component tag, as they would on a
// real queue. Without a parent the bus stays in this process.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

import * as Stackwatch from '@stackwatch/sdk';

/**
 * @typedef {{ id: string, topic: string, attempt: number, data: Record<string, any> }} Job
 * @typedef {(job: Job) => unknown} Handler
 */

const bus = new EventEmitter();
const parent = typeof process.send === 'function' ? process : null;
/** @type {Set<Promise<unknown>>} */
const running = new Set();
const STOP_GRACE_MS = 5_000;

/** @type {() => void} */
let stopped = () => {};
const whenStopped = new Promise((resolve) => {
  stopped = () => resolve(undefined);
});

if (parent) {
  parent.on('message', (/** @type {any} */ message) => {
    if (message?.type === 'job') bus.emit(message.job.topic, message.job);
    else if (message?.type === 'stop') stopped();
  });
  parent.on('disconnect', stopped);
}

/**
 * The Stackwatch context of a job: what the impact counts and "all errors of run X" are built from.
 * @param {Job} job
 */
export function jobContext(job) {
  const { data } = job;
  return {
    workflowId: data.workflow_id,
    workflowVersion: data.workflow_version,
    runId: data.run_id,
    stepId: data.node?.id ?? data.after,
    stepType: data.node?.type ?? (data.after === 'webhook' ? 'webhook' : undefined),
    attempt: job.attempt,
    tenant: data.tenant,
    queue: job.topic,
    jobId: job.id,
  };
}

/**
 * A handler that marks the run failed when it throws, then lets the error through to Stackwatch.
 * @param {Handler} handler
 * @returns {Handler}
 */
function failingTheRun(handler) {
  return async (job) => {
    try {
      return await handler(job);
    } catch (err) {
      const { run_id, workflow_id, tenant } = job.data;
      const failure = /** @type {{ name?: string }} */ (err)?.name ?? 'Error';
      queue.publish('run:failed', { run_id, workflow_id, tenant, step_id: jobContext(job).stepId, error: failure });
      throw err;
    }
  };
}

export const queue = {
  /**
   * Put a job on `topic`; returns it (with its id).
   * @param {string} topic
   * @param {Record<string, any>} data
   * @param {{ attempt?: number }} [options]
   * @returns {Job}
   */
  publish(topic, data, { attempt = 1 } = {}) {
    const job = { id: randomUUID(), topic, attempt, data };
    if (parent) parent.send?.({ type: 'publish', job });
    else setImmediate(() => bus.emit(topic, job));
    return job;
  },

  /**
   * Subscribe a raw handler to `topic`. It must not throw: use process() for job handlers.
   * @param {string} topic
   * @param {Handler} handler
   */
  on(topic, handler) {
    bus.on(topic, (/** @type {Job} */ job) => {
      const done = Promise.resolve()
        .then(() => handler(job))
        .finally(() => {
          running.delete(done);
          parent?.send?.({ type: 'done', id: job.id });
        });
      running.add(done);
    });
    parent?.send?.({ type: 'subscribe', topic });
  },

  /**
   * Consume `topic` with `handler({ id, topic, attempt, data })`. Each job runs in a Stackwatch workflow scope; an
   * error is reported once with the job's context and marks the run failed (it is not thrown further: the bus has
   * nobody to throw it to).
   * @param {string} topic
   * @param {Handler} handler
   */
  process(topic, handler) {
    queue.on(topic, Stackwatch.wrapJobHandler(failingTheRun(handler), jobContext));
  },

  /**
   * Publish `job` again with the next attempt number, after `delayMs` (the caller's backoff).
   * @param {Job} job
   * @param {number} delayMs
   */
  async retry(job, delayMs) {
    await sleep(delayMs);
    return queue.publish(job.topic, job.data, { attempt: job.attempt + 1 });
  },

  /** Resolves once the broker says stop (or goes away) and the running jobs have ended (at most 5 s later). */
  async closed() {
    await whenStopped;
    await Promise.race([Promise.allSettled([...running]), sleep(STOP_GRACE_MS)]);
  },
};

/**
 * Start a workflow run (MeshHook: after the webhook route stored it).
 * @param {Record<string, any>} run
 */
export function enqueueRun(run) {
  return queue.publish('run:orchestrate', { ...run, after: 'webhook' });
}

/**
 * Hand one step of a run to the executor.
 * @param {Record<string, any>} run
 * @param {{ id: string, type: string }} node
 * @param {unknown} input
 */
export function enqueueStep(run, node, input) {
  const { run_id, workflow_id, workflow_version, tenant } = run;
  return queue.publish('step:execute', { run_id, workflow_id, workflow_version, tenant, node, input });
}
