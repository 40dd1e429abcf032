// What the transport could not deliver, counted for client reports. A client report
// (https://develop.sentry.dev/sdk/telemetry/client-reports/) is an envelope item `{"timestamp", "discarded_events":
// [{"reason", "category", "quantity"}]}` telling the server how much was dropped on the client side and why. The
// transport writes its reports into the spool like any envelope, so they are as durable as events.
//
// Losses of client reports themselves (the `internal` category) are not counted: a report about a lost report would
// be lost the same way, again and again.

import { serialize } from './envelope.js';

/** @typedef {import('./envelope.js').Quantity} Quantity */

export class LostEvents {
  constructor() {
    /** @type {Map<string, number>} `reason:category` → quantity */
    this.counts = new Map();
  }

  /**
   * @param {string} reason
   * @param {string} category
   * @param {number} [quantity]
   */
  add(reason, category, quantity = 1) {
    if (!(quantity > 0) || category === 'internal') return;
    const key = `${reason}:${category}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + quantity);
  }

  /**
   * @param {string} reason
   * @param {Iterable<Quantity>} pairs
   */
  addAll(reason, pairs) {
    for (const [category, quantity] of pairs) this.add(reason, category, quantity);
  }

  get pending() {
    return this.counts.size > 0;
  }

  /**
   * Everything counted so far (and reset) as a client report envelope, or undefined when there is nothing.
   * @returns {Buffer | undefined}
   */
  takeReport() {
    if (this.counts.size === 0) return undefined;
    const counts = [...this.counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.counts = new Map();
    const discarded = counts.map(([key, quantity]) => {
      const at = key.indexOf(':');
      return { reason: key.slice(0, at), category: key.slice(at + 1), quantity };
    });
    const payload = Buffer.from(JSON.stringify({ timestamp: Date.now() / 1000, discarded_events: discarded }));
    return serialize({
      headers: { sent_at: new Date().toISOString() },
      items: [{ headers: { type: 'client_report', length: payload.length }, payload }],
    });
  }
}
