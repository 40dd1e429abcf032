/**
 * The spool directory: `arg`, else `$STACKWATCH_SPOOL_DIR`, else `$XDG_STATE_HOME/stackwatch/spool`, else
 * `~/.local/state/stackwatch/spool` (a directory under the system's temporary directory when there is no home).
 * Nothing is created here.
 * @param {string | null} [arg]
 * @returns {string}
 */
export function resolveSpoolDir(arg?: string | null): string;
/**
 * `value`, else `$STACKWATCH_SPOOL_MAX_BYTES` (`1048576`, `512KB`, `20MB`, `1G`), else 100 MiB.
 * @param {number | undefined} value
 * @returns {number}
 */
export function resolveMaxBytes(value: number | undefined): number;
/**
 * `settings` checked and completed. Throws an Error naming the first setting that is wrong.
 * @param {SpoolSettings} [settings]
 * @returns {ResolvedSettings}
 */
export function resolveSettings(settings?: SpoolSettings): ResolvedSettings;
export const SPOOL_DIR_ENV: "STACKWATCH_SPOOL_DIR";
export const MAX_BYTES_ENV: "STACKWATCH_SPOOL_MAX_BYTES";
export const DEFAULT_MAX_BYTES: number;
export const MEMORY_FALLBACK_MAX_BYTES: number;
/**
 * What `makeSpoolTransport` accepts. Times are in seconds, as in the Python SDK.
 */
export type SpoolSettings = {
    dsn?: string;
    spoolDir?: string;
    spoolMaxBytes?: number;
    retryMaxSeconds?: number;
    fsync?: boolean;
    sendClientReports?: boolean;
    compress?: boolean;
    connectTimeoutSeconds?: number;
    readTimeoutSeconds?: number;
    exitFlushSeconds?: number;
    retryBaseSeconds?: number;
    pollIntervalSeconds?: number;
    lockRetrySeconds?: number;
    heartbeatSeconds?: number;
    staleLockSeconds?: number;
    rescanSeconds?: number;
    clientReportIntervalSeconds?: number;
    memoryMaxBytes?: number;
};
/**
 * The settings with every default filled in.
 */
export type ResolvedSettings = {
    dsn: string | undefined;
    spoolDir: string;
    spoolMaxBytes: number;
    retryMaxSeconds: number;
    fsync: boolean;
    sendClientReports: boolean;
    compress: boolean;
    connectTimeoutSeconds: number;
    readTimeoutSeconds: number;
    exitFlushSeconds: number;
    retryBaseSeconds: number;
    pollIntervalSeconds: number;
    lockRetrySeconds: number;
    heartbeatSeconds: number;
    staleLockSeconds: number;
    rescanSeconds: number;
    clientReportIntervalSeconds: number;
    memoryMaxBytes: number;
};
