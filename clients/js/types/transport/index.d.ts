/**
 * @param {{ spoolDir?: string, spoolMaxBytes?: number }} [_settings]
 * @returns {typeof makeNodeTransport}
 */
export function makeSpoolTransport(_settings?: {
    spoolDir?: string;
    spoolMaxBytes?: number;
}): typeof makeNodeTransport;
import { makeNodeTransport } from '@sentry/node';
