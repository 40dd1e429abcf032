// `@stackwatch/sdk`: @sentry/node with Stackwatch's safe defaults, the shared redaction engine, a durable spool
// transport and MeshHook's workflow context. docs/sdk-js.md describes it; DESIGN §3.4 and §3.6 are its contracts.

import * as Sentry from '@sentry/node';
import { makeHooks, warn } from './hooks.js';
import { makeSpoolTransport } from './transport/index.js';

export { currentWorkflow, stepScope, TAG_KEYS, workflowOfError, workflowScope, wrapJobHandler } from './scope.js';
export { ALLOWED_HEADERS, secretArguments } from './hooks.js';
// @sentry/node's own: a capture goes through the current scope (so with its workflow tags), the hooks and the spool;
// `flush(timeoutMs)` resolves true once the spool is empty (0 or none: no limit); what is not delivered stays in
// the spool for the next process.
export { captureException, captureMessage, flush } from '@sentry/node';
export * from './scrub/index.js';

/** @typedef {import('./scope.js').WorkflowContext} WorkflowContext */
/** @typedef {Exclude<import('@sentry/node').NodeOptions['integrations'], Function | undefined>[number]} Integration */

/**
 * What @sentry/node collects, as Stackwatch sets it unless the caller passes `dataCollection` itself: no user
 * info, cookies, request bodies or query parameters; headers only from the short allow-list (the hooks enforce
 * the same on every event, whatever the SDK attached).
 */
export const DATA_COLLECTION = Object.freeze({
  userInfo: false,
  cookies: false,
  httpHeaders: { request: { allow: ['accept', 'content-type', 'host', 'user-agent'] }, response: false },
  httpBodies: [],
  urlQueryParams: false,
  databaseQueryData: false,
  queues: false,
  stackFrameVariables: false,
  genAI: { inputs: false, outputs: false },
  mcp: { inputs: false, outputs: false },
  graphQL: { document: true, variables: false },
});

/**
 * @typedef {Omit<import('@sentry/node').NodeOptions, 'dsn'> & {
 *   dsn?: string,
 *   component: string,
 *   spoolDir?: string,
 *   spoolMaxBytes?: number,
 *   scrubEmails?: boolean,
 *   scrubIps?: boolean,
 *   keepRequestDetails?: boolean,
 *   keepUserDetails?: boolean,
 *   flushOnSignals?: boolean,
 *   shutdownTimeoutMs?: number,
 * }} InitOptions
 * `component` names the part of the system reporting (`api`, `orchestrator`, `http-exec`): the `component` tag.
 * `keepRequestDetails` and `keepUserDetails` turn off the safe defaults (what is kept is still scrubbed).
 * `flushOnSignals` (default true): SIGTERM and SIGINT flush the spool before the process ends, for at most
 * `shutdownTimeoutMs` (default 2000).
 */

/** How many events @sentry/node may process at once before it drops them (its default is 64). */
const EVENT_BUFFER = 100_000;

/** @type {(() => void) | null} */
let removeSignalHandlers = null;
/** @type {number} */
let shutdownTimeout = 2000;

/**
 * Start reporting: @sentry/node's `init` with the Stackwatch defaults. The DSN comes from `dsn`, else
 * `STACKWATCH_DSN`, else `SENTRY_DSN` (without one, nothing is sent and a warning says so); the spool folder from
 * `spoolDir`, else `STACKWATCH_SPOOL_DIR`, else a per-user folder (`$XDG_STATE_HOME/stackwatch/spool`).
 * @param {InitOptions} options
 * @returns {import('@sentry/node').NodeClient | undefined}
 */
export function init(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('init needs an options object');
  const {
    dsn,
    component,
    spoolDir,
    spoolMaxBytes,
    scrubEmails,
    scrubIps,
    keepRequestDetails,
    keepUserDetails,
    flushOnSignals = true,
    shutdownTimeoutMs = 2000,
    beforeSend,
    beforeSendTransaction,
    beforeBreadcrumb,
    beforeSendLog,
    beforeSendSpan,
    integrations,
    ...sentryOptions
  } = options;
  if (typeof component !== 'string' || component.trim() === '') {
    throw new TypeError("init needs a component name, e.g. init({ component: 'orchestrator' })");
  }
  const resolved = dsn || process.env.STACKWATCH_DSN || process.env.SENTRY_DSN || undefined;
  if (!resolved) warn('no DSN (set STACKWATCH_DSN or pass dsn): nothing will be reported');
  const hooks = makeHooks({
    component,
    scrubEmails,
    scrubIps,
    keepRequestDetails,
    keepUserDetails,
    beforeSend: /** @type {any} */ (beforeSend),
    beforeSendTransaction: /** @type {any} */ (beforeSendTransaction),
    beforeBreadcrumb: /** @type {any} */ (beforeBreadcrumb),
    beforeSendLog: /** @type {any} */ (beforeSendLog),
    beforeSendSpan: /** @type {any} */ (beforeSendSpan),
  });
  // @sentry/node 11 streams spans by default and ignores (with a warning) beforeSendTransaction; 10 sends
  // transactions. Install the hook that the SDK in use reads.
  const streaming = sentryOptions.traceLifecycle !== 'static' && Number(Sentry.SDK_VERSION.split('.')[0]) >= 11;
  const client = Sentry.init({
    dataCollection: DATA_COLLECTION,
    includeLocalVariables: false,
    transport: makeSpoolTransport({ dsn: resolved, spoolDir, spoolMaxBytes }),
    ...sentryOptions,
    // @sentry/core drops events beyond 64 being processed at once (`queue_overflow`): a burst of errors, all of
    // which the spool can take, must not be cut there.
    transportOptions: { bufferSize: EVENT_BUFFER, ...sentryOptions.transportOptions },
    dsn: resolved,
    beforeSend: hooks.beforeSend,
    ...(streaming ? {} : { beforeSendTransaction: hooks.beforeSendTransaction }),
    beforeBreadcrumb: hooks.beforeBreadcrumb,
    beforeSendLog: hooks.beforeSendLog,
    beforeSendSpan: hooks.beforeSendSpan,
    integrations: withoutDedupe(integrations),
  });
  Sentry.getGlobalScope().setTag('component', component);
  shutdownTimeout = shutdownTimeoutMs;
  removeSignalHandlers?.();
  removeSignalHandlers = flushOnSignals ? installSignalHandlers() : null;
  return client;
}

/**
 * @sentry/node's `Dedupe` drops an event equal (message and stack) to the one before it: two workflow runs failing
 * the same way, or every retry of a step during an outage, would be reported once. Stackwatch groups them into one
 * issue and counts each; an error object is still reported only once (@sentry/node marks it when captured).
 * @param {import('@sentry/node').NodeOptions['integrations']} given
 * @returns {(defaults: Integration[]) => Integration[]}
 */
function withoutDedupe(given) {
  return (defaults) => {
    const kept = defaults.filter((integration) => integration.name !== 'Dedupe');
    if (typeof given === 'function') return given(kept);
    if (Array.isArray(given)) {
      const names = new Set(given.map((integration) => integration.name));
      return [...kept.filter((integration) => !names.has(integration.name)), ...given];
    }
    return kept;
  };
}

/**
 * Flush on SIGTERM and SIGINT. When no other listener handles the signal, the default behaviour follows the
 * flush (the signal is raised again, so the exit status says the process was terminated); with other listeners,
 * they decide how the process ends, and the flush runs beside them (the spool's exit listener writes whatever is
 * not on disk yet).
 * @returns {() => void} removes the handlers
 */
function installSignalHandlers() {
  /** @type {Array<[NodeJS.Signals, () => void]>} */
  const installed = [];
  for (const signal of /** @type {NodeJS.Signals[]} */ (['SIGTERM', 'SIGINT'])) {
    const onSignal = () => {
      const alone = process.listenerCount(signal) === 1;
      void Sentry.flush(shutdownTimeout).finally(() => {
        if (!alone) return;
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      });
    };
    process.on(signal, onSignal);
    installed.push([signal, onSignal]);
  }
  return () => {
    for (const [signal, handler] of installed) process.removeListener(signal, handler);
  };
}

/**
 * Flush, then stop reporting; removes the signal handlers.
 * @param {number} [timeoutMs]
 */
export async function close(timeoutMs) {
  removeSignalHandlers?.();
  removeSignalHandlers = null;
  return Sentry.close(timeoutMs);
}
