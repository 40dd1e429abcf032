// The seeded random source of the redaction tests, and the small helpers every generator uses.

/**
 * A small fast PRNG (sfc32, seeded through splitmix32), so that a failing case is rerun from its seed alone.
 * @param {number} seed
 */
export function prng(seed) {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  /** A float in [0, 1). */
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i += 1) next();
  return {
    next,
    /** @param {number} n an integer in [0, n) */
    int: (n) => Math.floor(next() * n),
    /** @param {number} p */
    chance: (p) => next() < p,
    /**
     * @template T
     * @param {readonly T[]} items
     * @returns {T}
     */
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

/** @typedef {ReturnType<typeof prng>} Rng */

export const LOWER = 'abcdefghijklmnopqrstuvwxyz';
export const UPPER = LOWER.toUpperCase();
export const DIGITS = '0123456789';
export const ALNUM = LOWER + UPPER + DIGITS;
export const BASE64 = ALNUM + '+/';
/**
 * @param {Rng} rng
 * @param {string} alphabet
 * @param {number} length
 */
export function chars(rng, alphabet, length) {
  let out = '';
  for (let i = 0; i < length; i += 1) out += alphabet[rng.int(alphabet.length)];
  return out;
}

/**
 * Set `object[key]` as JSON.parse would, also for "__proto__".
 * @param {Record<string, unknown>} object
 * @param {string} key
 * @param {unknown} value
 */
export function put(object, key, value) {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

