/**
 * Start reporting: @sentry/node's `init` with the Stackwatch defaults. The DSN comes from `dsn`, else
 * `STACKWATCH_DSN`, else `SENTRY_DSN` (without one, nothing is sent and a warning says so); the spool folder from
 * `spoolDir`, else `STACKWATCH_SPOOL_DIR`, else a per-user folder (`$XDG_STATE_HOME/stackwatch/spool`).
 * @param {InitOptions} options
 * @returns {import('@sentry/node').NodeClient | undefined}
 */
export function init(options: InitOptions): import("@sentry/node").NodeClient | undefined;
/**
 * Flush, then stop reporting; removes the signal handlers.
 * @param {number} [timeoutMs]
 */
export function close(timeoutMs?: number): Promise<boolean>;
export * from "./scrub/index.js";
/** @typedef {import('./scope.js').WorkflowContext} WorkflowContext */
/** @typedef {Exclude<import('@sentry/node').NodeOptions['integrations'], Function | undefined>[number]} Integration */
/**
 * What @sentry/node collects, as Stackwatch sets it unless the caller passes `dataCollection` itself: no user
 * info, cookies, request bodies or query parameters; headers only from the short allow-list (the hooks enforce
 * the same on every event, whatever the SDK attached).
 */
export const DATA_COLLECTION: Readonly<{
    userInfo: false;
    cookies: false;
    httpHeaders: {
        request: {
            allow: string[];
        };
        response: boolean;
    };
    httpBodies: never[];
    urlQueryParams: false;
    databaseQueryData: false;
    queues: false;
    stackFrameVariables: false;
    genAI: {
        inputs: boolean;
        outputs: boolean;
    };
    mcp: {
        inputs: boolean;
        outputs: boolean;
    };
    graphQL: {
        document: boolean;
        variables: boolean;
    };
}>;
export type WorkflowContext = import("./scope.js").WorkflowContext;
export type Integration = Exclude<import("@sentry/node").NodeOptions["integrations"], Function | undefined>[number];
/**
 * `component` names the part of the system reporting (`api`, `orchestrator`, `http-exec`): the `component` tag.
 * `keepRequestDetails` and `keepUserDetails` turn off the safe defaults (what is kept is still scrubbed).
 * `flushOnSignals` (default true): SIGTERM and SIGINT flush the spool before the process ends, for at most
 * `shutdownTimeoutMs` (default 2000).
 */
export type InitOptions = Omit<import("@sentry/node").NodeOptions, "dsn"> & {
    dsn?: string;
    component: string;
    spoolDir?: string;
    spoolMaxBytes?: number;
    scrubEmails?: boolean;
    scrubIps?: boolean;
    keepRequestDetails?: boolean;
    keepUserDetails?: boolean;
    flushOnSignals?: boolean;
    shutdownTimeoutMs?: number;
};
export { currentWorkflow, stepScope, TAG_KEYS, workflowOfError, workflowScope, wrapJobHandler } from "./scope.js";
export { ALLOWED_HEADERS, secretArguments } from "./hooks.js";
export { captureException, captureMessage, flush } from "@sentry/node";
