// The spool transport's settings: defaults, the environment variables, and checks that fail at start with the name
// of the setting. The defaults and the variables are those of the Python SDK's SpoolTransport (one design, one page
// of documentation: docs/sdk-js-spool.md).

import { homedir, tmpdir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';

export const SPOOL_DIR_ENV = 'STACKWATCH_SPOOL_DIR';
export const MAX_BYTES_ENV = 'STACKWATCH_SPOOL_MAX_BYTES';
export const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;
export const MEMORY_FALLBACK_MAX_BYTES = 16 * 1024 * 1024;

/**
 * What `makeSpoolTransport` accepts. Times are in seconds, as in the Python SDK.
 * @typedef {{
 *   dsn?: string,
 *   spoolDir?: string,
 *   spoolMaxBytes?: number,
 *   retryMaxSeconds?: number,
 *   fsync?: boolean,
 *   sendClientReports?: boolean,
 *   compress?: boolean,
 *   connectTimeoutSeconds?: number,
 *   readTimeoutSeconds?: number,
 *   exitFlushSeconds?: number,
 *   retryBaseSeconds?: number,
 *   pollIntervalSeconds?: number,
 *   lockRetrySeconds?: number,
 *   heartbeatSeconds?: number,
 *   staleLockSeconds?: number,
 *   rescanSeconds?: number,
 *   clientReportIntervalSeconds?: number,
 *   memoryMaxBytes?: number,
 * }} SpoolSettings
 */

/**
 * The settings with every default filled in.
 * @typedef {{
 *   dsn: string | undefined,
 *   spoolDir: string,
 *   spoolMaxBytes: number,
 *   retryMaxSeconds: number,
 *   fsync: boolean,
 *   sendClientReports: boolean,
 *   compress: boolean,
 *   connectTimeoutSeconds: number,
 *   readTimeoutSeconds: number,
 *   exitFlushSeconds: number,
 *   retryBaseSeconds: number,
 *   pollIntervalSeconds: number,
 *   lockRetrySeconds: number,
 *   heartbeatSeconds: number,
 *   staleLockSeconds: number,
 *   rescanSeconds: number,
 *   clientReportIntervalSeconds: number,
 *   memoryMaxBytes: number,
 * }} ResolvedSettings
 */

// Positive durations (seconds) and their defaults; exitFlushSeconds may also be 0 (no flush when the loop empties).
const DURATIONS = {
  retryMaxSeconds: 60,
  connectTimeoutSeconds: 5,
  readTimeoutSeconds: 30,
  exitFlushSeconds: 2,
  retryBaseSeconds: 0.5,
  pollIntervalSeconds: 1,
  lockRetrySeconds: 1,
  heartbeatSeconds: 2,
  staleLockSeconds: 30,
  rescanSeconds: 10,
  clientReportIntervalSeconds: 30,
};
const FLAGS = { fsync: false, sendClientReports: true, compress: true };
const SIZE = /^\s*(\d+)\s*([kmg]i?b?|b)?\s*$/i;
/** @type {Record<string, number>} */
const UNITS = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const KNOWN = new Set(['dsn', 'spoolDir', 'spoolMaxBytes', 'memoryMaxBytes', ...Object.keys(DURATIONS), ...Object.keys(FLAGS)]);

/**
 * The spool directory: `arg`, else `$STACKWATCH_SPOOL_DIR`, else `$XDG_STATE_HOME/stackwatch/spool`, else
 * `~/.local/state/stackwatch/spool` (a directory under the system's temporary directory when there is no home).
 * Nothing is created here.
 * @param {string | null} [arg]
 * @returns {string}
 */
export function resolveSpoolDir(arg) {
  const chosen = arg || process.env[SPOOL_DIR_ENV];
  if (chosen) return expandHome(chosen);
  const state = process.env.XDG_STATE_HOME;
  if (state && isAbsolute(state)) return join(state, 'stackwatch', 'spool');
  const home = homedir();
  if (home) return join(home, '.local', 'state', 'stackwatch', 'spool');
  return join(tmpdir(), `stackwatch-${userInfo().uid}`, 'spool');
}

/** @param {string} path */
function expandHome(path) {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/**
 * `value`, else `$STACKWATCH_SPOOL_MAX_BYTES` (`1048576`, `512KB`, `20MB`, `1G`), else 100 MiB.
 * @param {number | undefined} value
 * @returns {number}
 */
export function resolveMaxBytes(value) {
  if (value === undefined) {
    const text = (process.env[MAX_BYTES_ENV] ?? '').trim();
    if (!text) return DEFAULT_MAX_BYTES;
    const match = SIZE.exec(text);
    if (!match || Number(match[1]) <= 0) {
      throw new Error(`${MAX_BYTES_ENV}: expected a size such as 104857600, 512KB or 100MB, got ${JSON.stringify(text)}`);
    }
    return Number(match[1]) * UNITS[(match[2] ?? '').toLowerCase().slice(0, 1)];
  }
  return positiveInteger('spoolMaxBytes', value);
}

/**
 * `settings` checked and completed. Throws an Error naming the first setting that is wrong.
 * @param {SpoolSettings} [settings]
 * @returns {ResolvedSettings}
 */
export function resolveSettings(settings = {}) {
  if (typeof settings !== 'object' || settings === null) throw new TypeError('makeSpoolTransport: settings must be an object');
  for (const name of Object.keys(settings)) {
    if (!KNOWN.has(name)) throw new Error(`makeSpoolTransport: unknown setting ${JSON.stringify(name)}`);
  }
  /** @type {Record<string, any>} */
  const given = settings;
  /** @type {Record<string, any>} */
  const resolved = {
    dsn: given.dsn === undefined ? undefined : nonEmptyString('dsn', given.dsn),
    spoolDir: resolveSpoolDir(given.spoolDir === undefined ? undefined : nonEmptyString('spoolDir', given.spoolDir)),
    spoolMaxBytes: resolveMaxBytes(given.spoolMaxBytes),
  };
  resolved.memoryMaxBytes =
    given.memoryMaxBytes === undefined
      ? Math.min(resolved.spoolMaxBytes, MEMORY_FALLBACK_MAX_BYTES)
      : positiveInteger('memoryMaxBytes', given.memoryMaxBytes);
  for (const [name, fallback] of Object.entries(DURATIONS)) {
    const value = given[name];
    resolved[name] = value === undefined ? fallback : seconds(name, value, name === 'exitFlushSeconds');
  }
  for (const [name, fallback] of Object.entries(FLAGS)) {
    const value = given[name];
    if (value !== undefined && typeof value !== 'boolean') throw new Error(`${name}: expected true or false, got ${value}`);
    resolved[name] = value ?? fallback;
  }
  return /** @type {ResolvedSettings} */ (resolved);
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {boolean} zeroAllowed
 */
function seconds(name, value, zeroAllowed) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
    const wanted = zeroAllowed ? 'a finite number of seconds, 0 or more' : 'a positive, finite number of seconds';
    throw new Error(`${name}: expected ${wanted}, got ${String(value)}`);
  }
  return value;
}

/**
 * @param {string} name
 * @param {unknown} value
 */
function positiveInteger(name, value) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name}: expected a positive number of bytes, got ${String(value)}`);
  }
  return value;
}

/**
 * @param {string} name
 * @param {unknown} value
 */
function nonEmptyString(name, value) {
  if (typeof value !== 'string' || value === '') throw new Error(`${name}: expected a non-empty string, got ${String(value)}`);
  return value;
}
