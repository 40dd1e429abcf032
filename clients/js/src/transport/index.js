// Provisional: @sentry/node's own transport until the durable spool transport lands here.
import { makeNodeTransport } from '@sentry/node';

/**
 * @param {{ spoolDir?: string, spoolMaxBytes?: number }} [_settings]
 * @returns {typeof makeNodeTransport}
 */
export function makeSpoolTransport(_settings) {
  return makeNodeTransport;
}
