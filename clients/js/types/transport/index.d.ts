/** @typedef {import('./settings.js').SpoolSettings} SpoolSettings */
/** @typedef {import('./transport.js').TransportOptions} TransportOptions */
/** @typedef {import('./transport.js').TransportState} TransportState */
/**
 * A transport factory for `@sentry/node`'s `transport` option: every envelope goes to a file in the spool before
 * `send()` resolves, and one process per spool folder sends the files. The settings are checked here, so that a
 * wrong one fails at `init`, with its name.
 * @param {SpoolSettings} [settings]
 * @returns {(options: TransportOptions) => SpoolTransport}
 */
export function makeSpoolTransport(settings?: SpoolSettings): (options: TransportOptions) => SpoolTransport;
export { SpoolTransport } from "./transport.js";
export type SpoolSettings = import("./settings.js").SpoolSettings;
export type TransportOptions = import("./transport.js").TransportOptions;
export type TransportState = import("./transport.js").TransportState;
import { SpoolTransport } from './transport.js';
export { DEFAULT_MAX_BYTES, MAX_BYTES_ENV, SPOOL_DIR_ENV, resolveSpoolDir } from "./settings.js";
export { folderFor, spoolFiles } from "./spool.js";
