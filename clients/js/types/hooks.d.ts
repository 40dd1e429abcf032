/**
 * @typedef {Record<string, any>} Item
 * @typedef {(item: any, hint: any) => any} Callback
 * @typedef {{
 *   component: string,
 *   scrubEmails?: boolean,
 *   scrubIps?: boolean,
 *   keepRequestDetails?: boolean,
 *   keepUserDetails?: boolean,
 *   beforeSend?: Callback,
 *   beforeSendTransaction?: Callback,
 *   beforeBreadcrumb?: Callback,
 *   beforeSendLog?: Callback,
 *   beforeSendSpan?: Callback,
 * }} HookOptions
 */
/**
 * The callbacks for one `init`: the caller's own run first, then Stackwatch's.
 * @param {HookOptions} options
 */
export function makeHooks(options: HookOptions): {
    /** @type {Callback} */
    beforeSend: Callback;
    /** @type {Callback} */
    beforeSendTransaction: Callback;
    /** @type {Callback} */
    beforeBreadcrumb: Callback;
    /** @type {(log: any) => any} */
    beforeSendLog: (log: any) => any;
    /** @type {(span: any) => any} */
    beforeSendSpan: (span: any) => any;
};
/**
 * @param {string} message
 * @param {unknown} [error]
 */
export function warn(message: string, error?: unknown): void;
/**
 * scrubEvent, failing closed: if the engine fails, each top-level field is scrubbed on its own and a field that
 * still fails is dropped (recorded in `_meta` as `!stackwatch.scrub_error`).
 * @param {Item} event
 * @param {import('./scrub/index.js').ScrubOptions} options
 * @param {typeof scrubEvent} [engine] the engine (tests give one that fails)
 * @returns {Item}
 */
export function scrubSafely(event: Item, options: import("./scrub/index.js").ScrubOptions, engine?: typeof scrubEvent): Item;
/**
 * Merge `_meta` trees: remarks on the same field are concatenated, the first `len` wins.
 * @param {Item} target
 * @param {Item} extra
 */
export function mergeMeta(target: Item, extra: Item): void;
/**
 * The positions of console arguments that follow an argument ending in a secret-looking word:
 * `console.error('token', t)`, `console.log('password:', p)`, `console.log({ at }, 'api key =', k)`.
 * @param {unknown[]} args
 * @returns {Map<number, string>} position → the key rule's name
 */
export function secretArguments(args: unknown[]): Map<number, string>;
/** `_meta` rule for data left out by configuration (@sentry/node's and sentry-python's own name). */
export const REQUEST_DETAILS_RULE: "!config";
/** `_meta` rule for a field dropped because the engine failed on it. */
export const SCRUB_ERROR_RULE: "!stackwatch.scrub_error";
/** The request headers kept on events: none of them carries a credential or a payload. */
export const ALLOWED_HEADERS: readonly string[];
/**
 * What the current request is, as set by the SvelteKit `handle` (a webhook route gets the strictest treatment).
 * @type {AsyncLocalStorage<{ webhook: boolean }>}
 */
export const requestPolicy: AsyncLocalStorage<{
    webhook: boolean;
}>;
export type Item = Record<string, any>;
export type Callback = (item: any, hint: any) => any;
export type HookOptions = {
    component: string;
    scrubEmails?: boolean;
    scrubIps?: boolean;
    keepRequestDetails?: boolean;
    keepUserDetails?: boolean;
    beforeSend?: Callback;
    beforeSendTransaction?: Callback;
    beforeBreadcrumb?: Callback;
    beforeSendLog?: Callback;
    beforeSendSpan?: Callback;
};
import { scrubEvent } from './scrub/index.js';
import { AsyncLocalStorage } from 'node:async_hooks';
