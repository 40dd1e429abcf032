// A transport for tests that keeps every envelope @sentry/node sends in memory, parsed.
import * as Sentry from '@sentry/node';

import { readEnvelope } from './recorder.js';

/**
 * A transport factory and what it received: `sent` holds the raw bodies, `events()` the event payloads.
 */
export function memoryTransport() {
  /** @type {Array<string | Uint8Array>} */
  const sent = [];
  /** @param {any} options */
  const transport = (options) =>
    Sentry.createTransport(options, async (request) => {
      sent.push(request.body);
      return { statusCode: 200 };
    });
  return {
    transport,
    sent,
    /** every raw byte sent, as one string */
    bytes: () => sent.map((b) => (typeof b === 'string' ? b : Buffer.from(b).toString('utf8'))).join('\n'),
    /** the event items sent so far */
    events: () =>
      sent.flatMap((b) => readEnvelope(Buffer.from(b)).items.filter((i) => i.headers.type === 'event').map((i) => i.payload)),
    clear: () => {
      sent.length = 0;
    },
  };
}
