/**
 * The workflow context of the innermost scope this async flow is in (a copy; empty outside every scope).
 * @returns {Workflow}
 */
export function currentWorkflow(): Workflow;
/**
 * The workflow context an error (or an error it wraps through `cause`) escaped a scope with, or null.
 * @param {unknown} error
 * @returns {Workflow | null}
 */
export function workflowOfError(error: unknown): Workflow | null;
/**
 * Run `fn` inside a workflow scope: its own isolation scope, with the workflow tags, context and a breadcrumb.
 * Returns what `fn` returns (a Promise stays a Promise); an error escaping it carries the workflow context.
 * @template T
 * @param {WorkflowContext} context
 * @param {() => T} fn
 * @returns {T}
 */
export function workflowScope<T>(context: WorkflowContext, fn: () => T): T;
/**
 * Run `fn` as one step of the enclosing run: like workflowScope, inheriting the run's keys but not the
 * enclosing step's (step_id, step_type, attempt).
 * @template T
 * @param {WorkflowContext} context
 * @param {() => T} fn
 * @returns {T}
 */
export function stepScope<T>(context: WorkflowContext, fn: () => T): T;
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
export function wrapJobHandler<A extends unknown[], R>(handler: (...args: A) => R | Promise<R>, toContext?: (...args: A) => WorkflowContext | null | undefined, options?: {
    rethrow?: boolean;
}): (...args: A) => Promise<R | undefined>;
/** The workflow keys that are also tags (DESIGN §3.4). */
export const TAG_KEYS: readonly ("workflow_id" | "workflow_version" | "run_id" | "step_id" | "step_type" | "attempt" | "tenant" | "queue" | "job_id")[];
/** The property an escaping error carries its workflow context under. */
export const WORKFLOW_SYMBOL: unique symbol;
/**
 * What a workflow or step scope describes; every field is optional.
 */
export type WorkflowContext = {
    workflowId?: string | number | null;
    runId?: string | number | null;
    stepId?: string | number | null;
    stepType?: string | null;
    attempt?: string | number | null;
    tenant?: string | number | null;
    workflowVersion?: string | number | null;
    queue?: string | null;
    jobId?: string | number | null;
};
/**
 * The `workflow` context as sent: snake_case keys (the server's names), string values.
 */
export type Workflow = Record<string, string>;
