// MeshHook workflow context on @sentry/node scopes: workflowScope, stepScope and wrapJobHandler.
//
// A workflow scope forks @sentry/node's isolation scope (`withIsolationScope`), which lives in an
// AsyncLocalStorage: every async flow sees only the scopes it entered itself, so two jobs running at once never
// see each other's tags, breadcrumbs or user. What a scope sets (undefined and null values are left out, or
// inherited from an enclosing scope):
//
// * tags workflow_id, workflow_version, run_id, step_id, step_type, attempt, tenant (strings, DESIGN §3.4);
// * the context `workflow` with the same keys plus queue and job_id;
// * a breadcrumb (category `workflow`) when the scope starts: "step fetch-orders (http) attempt 2 started".
//
// An error that escapes a scope carries the scope's workflow context with it (a non-enumerable property under
// Symbol.for('stackwatch.workflow')): whoever reports it later, outside the scope (the uncaught-exception handler,
// a retry loop's logger), reports it with the workflow tags of the innermost scope it escaped from.

import { AsyncLocalStorage } from 'node:async_hooks';
import * as Sentry from '@sentry/node';

/**
 * What a workflow or step scope describes; every field is optional.
 * @typedef {{
 *   workflowId?: string | number | null, runId?: string | number | null, stepId?: string | number | null,
 *   stepType?: string | null, attempt?: string | number | null, tenant?: string | number | null,
 *   workflowVersion?: string | number | null, queue?: string | null, jobId?: string | number | null
 * }} WorkflowContext
 */

/** The `workflow` context as sent: snake_case keys (the server's names), string values. @typedef {Record<string, string>} Workflow */

/** camelCase option → snake_case key, in the order of the `workflow` context; the first seven are also tags. */
const KEYS = /** @type {const} */ ([
  ['workflowId', 'workflow_id'],
  ['workflowVersion', 'workflow_version'],
  ['runId', 'run_id'],
  ['stepId', 'step_id'],
  ['stepType', 'step_type'],
  ['attempt', 'attempt'],
  ['tenant', 'tenant'],
  ['queue', 'queue'],
  ['jobId', 'job_id'],
]);

/** The workflow keys that are also tags (DESIGN §3.4). */
export const TAG_KEYS = Object.freeze(KEYS.slice(0, 7).map(([, key]) => key));

/** Keys that describe one step: a scope naming a new step does not inherit them from the enclosing one. */
const STEP_KEYS = new Set(['step_id', 'step_type', 'attempt']);

/** The property an escaping error carries its workflow context under. */
export const WORKFLOW_SYMBOL = Symbol.for('stackwatch.workflow');

/** How far along `cause` to look for that property (an engine may wrap the step's error). */
const CAUSE_LIMIT = 10;

/** @type {AsyncLocalStorage<Workflow>} */
const current = new AsyncLocalStorage();

/**
 * The workflow context of the innermost scope this async flow is in (a copy; empty outside every scope).
 * @returns {Workflow}
 */
export function currentWorkflow() {
  return { ...(current.getStore() ?? {}) };
}

/**
 * The workflow context an error (or an error it wraps through `cause`) escaped a scope with, or null.
 * @param {unknown} error
 * @returns {Workflow | null}
 */
export function workflowOfError(error) {
  let link = error;
  for (let depth = 0; depth < CAUSE_LIMIT && link !== null && typeof link === 'object'; depth += 1) {
    const found = /** @type {Record<symbol, unknown>} */ (link)[WORKFLOW_SYMBOL];
    if (found && typeof found === 'object') return { .../** @type {Workflow} */ (found) };
    link = /** @type {{ cause?: unknown }} */ (link).cause;
  }
  return null;
}

/**
 * Run `fn` inside a workflow scope: its own isolation scope, with the workflow tags, context and a breadcrumb.
 * Returns what `fn` returns (a Promise stays a Promise); an error escaping it carries the workflow context.
 * @template T
 * @param {WorkflowContext} context
 * @param {() => T} fn
 * @returns {T}
 */
export function workflowScope(context, fn) {
  return enter(context, fn, false);
}

/**
 * Run `fn` as one step of the enclosing run: like workflowScope, inheriting the run's keys but not the
 * enclosing step's (step_id, step_type, attempt).
 * @template T
 * @param {WorkflowContext} context
 * @param {() => T} fn
 * @returns {T}
 */
export function stepScope(context, fn) {
  return enter(context, fn, true);
}

/**
 * @template T
 * @param {WorkflowContext} context
 * @param {() => T} fn
 * @param {boolean} isStep
 * @returns {T}
 */
function enter(context, fn, isStep) {
  if (typeof fn !== 'function') throw new TypeError('a workflow scope needs a function to run');
  const own = normalize(context);
  const outer = current.getStore() ?? {};
  const names = isStep || Object.keys(own).some((key) => STEP_KEYS.has(key));
  /** @type {Workflow} */
  const workflow = {};
  for (const [, key] of KEYS) {
    const value = own[key] ?? (names && STEP_KEYS.has(key) ? undefined : outer[key]);
    if (value !== undefined) workflow[key] = value;
  }
  return Sentry.withIsolationScope((scope) => {
    // The fork starts with the enclosing scope's tags: a key this scope leaves out must not keep the outer value.
    for (const key of TAG_KEYS) scope.setTag(key, workflow[key]);
    scope.setContext('workflow', workflow);
    scope.addBreadcrumb({ category: 'workflow', level: 'info', message: describe(workflow), data: { ...workflow } });
    return current.run(workflow, () => {
      let result;
      try {
        result = fn();
      } catch (error) {
        throw mark(error, workflow);
      }
      if (isThenable(result)) {
        return /** @type {T} */ (
          /** @type {unknown} */ (
            Promise.resolve(result).catch((error) => {
              throw mark(error, workflow);
            })
          )
        );
      }
      return result;
    });
  });
}

/**
 * @param {unknown} value
 * @returns {value is PromiseLike<unknown>}
 */
function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof (/** @type {{ then?: unknown }} */ (value).then) === 'function';
}

/**
 * Record the innermost scope's context on an escaping error (only the first, innermost, scope writes it).
 * @param {unknown} error
 * @param {Workflow} workflow
 * @returns {unknown}
 */
function mark(error, workflow) {
  if (error !== null && typeof error === 'object' && Object.isExtensible(error) && !Object.hasOwn(error, WORKFLOW_SYMBOL)) {
    try {
      Object.defineProperty(error, WORKFLOW_SYMBOL, { value: { ...workflow }, enumerable: false, configurable: true });
    } catch {
      // A frozen or exotic error object: it is reported without its workflow context outside the scope.
    }
  }
  return error;
}

/**
 * The snake_case, string-valued form of a context; unknown keys and empty values are left out.
 * @param {WorkflowContext | null | undefined} context
 * @returns {Workflow}
 */
function normalize(context) {
  /** @type {Workflow} */
  const out = {};
  if (context === null || context === undefined) return out;
  if (typeof context !== 'object') throw new TypeError('a workflow context must be an object');
  const given = /** @type {Record<string, unknown>} */ (context);
  for (const [name, key] of KEYS) {
    const value = given[name] ?? given[key];
    if (value === undefined || value === null || value === '') continue;
    out[key] = String(value);
  }
  return out;
}

/**
 * The breadcrumb's message: "step fetch (http) attempt 2 started" or "run r-1 of workflow w-1 started".
 * @param {Workflow} workflow
 */
function describe(workflow) {
  if (workflow.step_id !== undefined) {
    const type = workflow.step_type ? ` (${workflow.step_type})` : '';
    const attempt = workflow.attempt ? ` attempt ${workflow.attempt}` : '';
    return `step ${workflow.step_id}${type}${attempt} started`;
  }
  if (workflow.run_id !== undefined) {
    const of = workflow.workflow_id ? ` of workflow ${workflow.workflow_id}` : '';
    return `run ${workflow.run_id}${of} started`;
  }
  return workflow.workflow_id !== undefined ? `workflow ${workflow.workflow_id} started` : 'workflow scope started';
}

/**
 * Wrap a queue consumer (`bus.on(topic, wrapJobHandler(handler, toContext))`): each job runs in a workflow scope
 * with the context `toContext(...args)` gives; an error is reported once, with that context (mechanism
 * `stackwatch.job`, unhandled), and rethrown only with `{ rethrow: true }`. The wrapper always returns a Promise.
 * @template {unknown[]} A
 * @template R
 * @param {(...args: A) => R | Promise<R>} handler
 * @param {(...args: A) => WorkflowContext | null | undefined} [toContext]
 * @param {{ rethrow?: boolean }} [options]
 * @returns {(...args: A) => Promise<R | undefined>}
 */
export function wrapJobHandler(handler, toContext, options = {}) {
  if (typeof handler !== 'function') throw new TypeError('wrapJobHandler needs a handler function');
  const rethrow = options.rethrow === true;
  return async (...args) => {
    /** @type {WorkflowContext | null | undefined} */
    let context = null;
    try {
      context = toContext ? toContext(...args) : null;
    } catch (error) {
      console.warn('stackwatch: the job context function failed; the job runs without workflow context:', error);
    }
    try {
      return await workflowScope(context ?? {}, async () => {
        try {
          return await handler(...args);
        } catch (error) {
          Sentry.captureException(error, { data: { mechanism: { type: 'stackwatch.job', handled: false } } });
          throw error;
        }
      });
    } catch (error) {
      if (rethrow) throw error;
      return undefined;
    }
  };
}
