// The fallback store when the spool folder cannot be written: envelopes in memory, oldest evicted first. It has the
// interface of DiskSpool and none of its durability: what it holds is lost when the process ends.

import { decodeCategories, encodeCategories } from './envelope.js';
import { ENVELOPE_SUFFIX } from './spool.js';

/** @typedef {import('./envelope.js').Quantity} Quantity */
/** @typedef {import('./spool.js').Store} Store */

/** @implements {Store} */
export class MemorySpool {
  durable = false;
  /** @type {string | null} */
  inFlight = null;

  /** @param {{ maxBytes: number }} options */
  constructor({ maxBytes }) {
    this.maxBytes = maxBytes;
    /** @type {Map<string, Buffer>} */
    this.items = new Map();
    this.total = 0;
    this.seq = 0;
  }

  get totalBytes() {
    return this.total;
  }

  /**
   * @param {Buffer} data
   * @param {Quantity[]} quantities
   * @returns {import('./spool.js').WriteResult}
   */
  write(data, quantities) {
    if (data.length > this.maxBytes) return { lost: quantities, done: Promise.resolve(null) };
    const name = `${String(this.seq++).padStart(12, '0')}_${encodeCategories(quantities)}${ENVELOPE_SUFFIX}`;
    /** @type {Quantity[]} */
    const lost = [];
    for (const [victim, bytes] of this.items) {
      if (this.total + data.length <= this.maxBytes) break;
      if (victim === this.inFlight) continue;
      this.items.delete(victim);
      this.total -= bytes.length;
      lost.push(...decodeCategories(victim));
    }
    this.items.set(name, data);
    this.total += data.length;
    return { lost, done: Promise.resolve(null) };
  }

  async settled() {}

  /** @param {boolean} [_fresh] */
  async pending(_fresh) {
    return [...this.items.keys()];
  }

  /** @param {string} name */
  async read(name) {
    return this.items.get(name) ?? null;
  }

  /** @param {string} name */
  async remove(name) {
    const data = this.items.get(name);
    if (data !== undefined) {
      this.items.delete(name);
      this.total -= data.length;
    }
  }

  async refresh() {}

  async tryLock() {
    return true;
  }

  unlock() {}
}
