// The executor: runs the transform and HTTP steps of step:execute jobs. An HTTP step is retried, as a new job with
// the next attempt number, on a 5xx answer or a timeout, up to MAX_ATTEMPTS; then it fails with a StepFailedError
// whose cause is the last attempt's error. A 4xx answer, or a transform that throws, fails the step at once.
import { HttpStatusError, StepFailedError } from './lib/errors.js';
import { isMain } from './lib/is-main.js';
import { runWorker } from './lib/main.js';
import { queue } from './lib/queue.js';

const MAX_ATTEMPTS = 3;
const BACKOFF_MS = 100;
const DEFAULT_TIMEOUT_MS = 2_000;
const TARGET = process.env.MESHHOOK_TARGET_URL ?? 'http://127.0.0.1:8787';

/** @type {Record<string, (input: any) => unknown>} */
const TRANSFORMS = {
  // A lead from the form provider, as the CRM wants it. A lead without an email throws a TypeError here.
  lead: (input) => ({ email: input.lead.email.trim().toLowerCase(), name: input.lead.name }),
};

/**
 * @param {import('./lib/workflows.js').WorkflowNode} node
 * @param {any} input
 */
function request(node, input) {
  const path = (node.path ?? '/').replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(String(input?.[name])));
  const method = node.method ?? 'POST';
  // pushInvoice sends the order fetchOrder got; every other step sends its input as it is
  const payload = node.id === 'pushInvoice' ? { order_id: input.id, total: input.total } : input;
  const body = method === 'GET' ? undefined : JSON.stringify(payload);
  return { method, url: new URL(path, TARGET), body };
}

/**
 * One attempt of an HTTP step; its parsed answer.
 * @param {import('./lib/queue.js').Job} job
 */
async function callTarget(job) {
  const { run_id: runId, node, input } = job.data;
  const { method, url, body } = request(node, input);
  const response = await fetch(url, {
    method,
    body,
    headers: { 'content-type': 'application/json', 'idempotency-key': `mh-${runId}-${node.id}` },
    signal: AbortSignal.timeout(node.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new HttpStatusError(method, url, response.status, text.slice(0, 200));
  return text ? JSON.parse(text) : null;
}

/** @param {unknown} err */
function retryable(err) {
  if (err instanceof HttpStatusError) return err.status >= 500;
  const name = /** @type {{ name?: string }} */ (err)?.name;
  return name === 'TimeoutError' || (err instanceof TypeError && err.message === 'fetch failed');
}

/** @param {import('./lib/queue.js').Job} job */
async function runHttpStep(job) {
  try {
    return await callTarget(job);
  } catch (err) {
    if (!retryable(err)) throw err;
    const { node } = job.data;
    if (job.attempt < MAX_ATTEMPTS) {
      const why = /** @type {Error} */ (err).message;
      console.log(`http-exec: ${node.id} attempt ${job.attempt} failed (${why}); retrying`);
      await queue.retry(job, BACKOFF_MS * 2 ** (job.attempt - 1));
      return undefined;
    }
    throw new StepFailedError(`step ${node.id} failed after ${job.attempt} attempts`, { cause: err });
  }
}

/** @param {import('./lib/queue.js').Job} job */
async function handleStep(job) {
  const { node, input } = job.data;
  let output;
  if (node.type === 'transform') {
    output = TRANSFORMS[node.transform](input);
  } else if (node.type === 'http_call') {
    output = await runHttpStep(job);
    if (output === undefined) return; // retried as a new job
  } else {
    throw new Error(`http-exec: no executor for node type "${node.type}"`);
  }
  const { run_id, workflow_id, workflow_version, tenant } = job.data;
  queue.publish('run:orchestrate', { run_id, workflow_id, workflow_version, tenant, after: node.id, input: output });
}

export async function startHttpExec() {
  queue.process('step:execute', handleStep);
  console.log(`http-exec: consuming step:execute, target ${TARGET}`);
}

if (isMain(import.meta.url)) await runWorker('http-exec', startHttpExec);
