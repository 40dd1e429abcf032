// Seeded generators of strings and events for the property and differential tests of the redaction engine.
// Everything here is a pure function of the seed: the same seed gives the same events, in JavaScript or when the
// events are written out as JSON for the Python engine.

import { readFileSync } from 'node:fs';

import { ALNUM, BASE64, DIGITS, LOWER, UPPER, chars, put } from './prng.js';
import { SECRET_KEYS, SECRET_SHAPES, WORDS } from './secrets.js';

/** @typedef {import('./prng.js').Rng} Rng */

/** The vectors' strings and keys: what the rules were written against, material to cut up and mix. */
const VECTORS = JSON.parse(readFileSync(new URL('../../../../tests/vectors/scrub.json', import.meta.url), 'utf8'));
const VECTOR_TEXTS = /** @type {string[]} */ (
  VECTORS.flatMap((/** @type {any} */ v) => [v.input, v.expected].filter((s) => typeof s === 'string' && s !== ''))
);
const VECTOR_KEYS = /** @type {string[]} */ (
  VECTORS.filter((/** @type {any} */ v) => typeof v.input === 'object' && 'key' in v.input).map(
    (/** @type {any} */ v) => v.input.key,
  )
);

// Pieces that sit at the edges of what the rules match: separators, quotes, the characters of labels, look-alike
// letters, marks and invisible characters, spaces Python and JavaScript disagree on, surrogates.
const PIECES = [
  ' ', ' ', '=', ':', '&', '?', '#', '@', '/', '//', '://', '"', "'", ',', ';', '.', '-', '_', '+', '\n', '\t', '\r',
  '[', ']', '[Filtered]', '[Filtered:bearer]', '{', '}', '(', ')', '<', '>', '%', '%40', '\\', '$',
  'é', 'ß', 'İ', 'ı', 'ſ', 'K', 'а', 'е', 'о', 'р', 'с', 'Α', 'Ο', 'ｐａｓｓ', '\u0301', '\u200b', '\u00ad', '\ufeff',
  '\u001f', '\u0085', '\u00a0', '\u2028', '\u3000', '٣', '۴', '０', '𝟗', '😀', '🔑', '\ud800', '\udc00', '中文', 'ǅ',
];
const PLAIN_KEYS = [
  'message', 'value', 'type', 'module', 'filename', 'function', 'lineno', 'data', 'url', 'method', 'id', 'name',
  'email', 'ip_address', 'username', 'level', 'category', 'query', 'body', 'env', 'cwd', 'pinned', 'spinner',
  'author', 'authority', 'workflow_id', 'run_id', 'step_id', 'tenant', 'component', 'event_id', 'trace_id',
  'span_id', 'parent_span_id', 'tags', 'headers', 'cookies', 'query_string', 'extra', 'contexts', 'vars', 'items',
  '', ' ', '0', '1', '2', '10', '4294967295', '-1', '01', '__proto__', 'constructor', 'prototype', 'toString',
  'hasOwnProperty', 'valueOf', '__defineGetter__', 'length', 'rem', 'len', '[Filtered]', '[Filtered:github_token]',
  '[Filtered:github_token] #2', 'Trace_ID', 'RUN_ID', 'ｒｕｎ＿ｉｄ',
];

// Blocks whose characters have had the same properties for many Unicode versions (Latin, Greek, Cyrillic, Hebrew,
// Arabic, Devanagari, general punctuation, letter-like symbols, CJK and kana, Hangul, full-width forms, surrogates,
// private use, mathematical letters and digits, emoji): both engines' tables read them alike, whatever their
// versions (the differential test leaves out a case holding a code point only one of them knows).
const STABLE_BLOCKS = [
  [0xa0, 0x377], [0x386, 0x3ff], [0x400, 0x52f], [0x5d0, 0x5ea], [0x620, 0x6ff], [0x900, 0x97f], [0x2000, 0x2064],
  [0x2100, 0x218b], [0x3000, 0x30ff], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xd800, 0xdfff], [0xe000, 0xf8ff],
  [0xff01, 0xffee], [0x1d400, 0x1d7ff], [0x1f300, 0x1f5ff],
];

/**
 * A code point from anywhere: mostly ASCII, then control characters, then the blocks above; now and then any code
 * point of the first two planes.
 * @param {Rng} rng
 */
function anyChar(rng) {
  const roll = rng.next();
  if (roll < 0.6) return String.fromCharCode(32 + rng.int(95));
  if (roll < 0.7) return String.fromCharCode(rng.int(32));
  if (roll < 0.98) {
    const [low, high] = rng.pick(STABLE_BLOCKS);
    return String.fromCodePoint(low + rng.int(high - low + 1));
  }
  return String.fromCodePoint(rng.int(0x20000));
}

/**
 * A string: a vector's text (as is or cut up and mixed), a secret of a known shape, words and edge pieces, or
 * random characters; one in 200 is a long one.
 * @param {Rng} rng
 * @returns {string}
 */
export function randomString(rng) {
  const roll = rng.next();
  if (roll < 0.2) return rng.pick(VECTOR_TEXTS);
  if (roll < 0.4) return mutate(rng, rng.pick(VECTOR_TEXTS));
  if (roll < 0.5) return rng.pick(Object.values(SECRET_SHAPES))(rng)[1];
  if (roll < 0.75) {
    let out = '';
    for (let n = 1 + rng.int(8); n > 0; n -= 1) {
      const part = rng.next();
      if (part < 0.4) out += rng.pick(WORDS);
      else if (part < 0.7) out += rng.pick(PIECES);
      else if (part < 0.8) out += chars(rng, ALNUM, 1 + rng.int(40));
      else if (part < 0.9) out += String(rng.int(1e9));
      else out += rng.pick(Object.values(SECRET_SHAPES))(rng)[1];
    }
    return out;
  }
  if (roll < 0.995) {
    let out = '';
    for (let n = rng.int(30); n > 0; n -= 1) out += anyChar(rng);
    return out;
  }
  return longString(rng);
}

/**
 * A string of 1,000 to 20,000 characters, repetitive (the shapes that make a pattern backtrack) or mixed.
 * @param {Rng} rng
 */
function longString(rng) {
  const length = 1000 + rng.int(19000);
  const unit = rng.pick([
    'a', '4', '4111 ', 'Ab1+', 'token=', '=', ':', 'a:b@', 'https://', 'Bearer ', 'AKIA', 'key_', ' ', '"',
    'password="', '-u ', 'DE89 ', '😀', 'eyJ', '-----BEGIN PRIVATE KEY-----', rng.pick(VECTOR_TEXTS),
  ]);
  let out = unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
  if (rng.chance(0.5)) out = mutate(rng, out);
  return out;
}

/**
 * `text` with a few edits: characters inserted, deleted, swapped for another case, another vector spliced in.
 * @param {Rng} rng
 * @param {string} text
 */
export function mutate(rng, text) {
  let out = text;
  for (let n = 1 + rng.int(3); n > 0; n -= 1) {
    const at = rng.int(out.length + 1);
    const kind = rng.int(6);
    if (kind === 0) out = out.slice(0, at) + rng.pick(PIECES) + out.slice(at);
    else if (kind === 1) out = out.slice(0, at) + out.slice(at + 1 + rng.int(4));
    else if (kind === 2) out = out.slice(0, at) + out.slice(at, at + 8).toUpperCase() + out.slice(at + 8);
    else if (kind === 3) out = out.slice(0, at) + out.slice(at, at + 8).toLowerCase() + out.slice(at + 8);
    else if (kind === 4) out = out.slice(0, at) + ' ' + rng.pick(VECTOR_TEXTS) + out.slice(at);
    else out = out.slice(0, at) + anyChar(rng) + out.slice(at);
  }
  return out;
}

/**
 * @param {Rng} rng
 * @returns {string}
 */
export function randomKey(rng) {
  const roll = rng.next();
  if (roll < 0.3) return rng.pick(PLAIN_KEYS);
  if (roll < 0.5) return rng.pick(SECRET_KEYS);
  if (roll < 0.55) return rng.pick(VECTOR_KEYS);
  if (roll < 0.6) return rng.pick(Object.values(SECRET_SHAPES))(rng)[0]; // a secret used as a key
  if (roll < 0.65) return mutate(rng, rng.pick([...SECRET_KEYS, ...PLAIN_KEYS]));
  if (roll < 0.85) return chars(rng, LOWER + '_', 1 + rng.int(12));
  return randomString(rng);
}

/**
 * A JSON value: strings, numbers, booleans, null, objects and lists of them, `depth` levels at most.
 * @param {Rng} rng
 * @param {number} depth
 * @returns {unknown}
 */
export function randomValue(rng, depth) {
  const roll = rng.next();
  if (depth <= 0 || roll < 0.55) return randomScalar(rng);
  if (roll < 0.75) {
    const list = [];
    for (let n = rng.int(6); n > 0; n -= 1) list.push(randomValue(rng, depth - 1));
    if (rng.chance(0.15)) return [randomKey(rng), randomValue(rng, depth - 1)]; // a [key, value] pair
    if (rng.chance(0.1)) return awsList(rng);
    return list;
  }
  return randomObject(rng, depth - 1);
}

/**
 * @param {Rng} rng
 * @param {number} depth
 * @returns {Record<string, unknown>}
 */
export function randomObject(rng, depth) {
  /** @type {Record<string, unknown>} */
  const object = {};
  for (let n = rng.int(7); n > 0; n -= 1) put(object, randomKey(rng), randomValue(rng, depth));
  return object;
}

/**
 * A list with an AWS access key id and (sometimes) its secret beside it, as logging arguments are.
 * @param {Rng} rng
 */
function awsList(rng) {
  const list = [randomScalar(rng), 'AKIA' + chars(rng, UPPER + DIGITS, 16), chars(rng, BASE64, 40)];
  if (rng.chance(0.5)) list.reverse();
  return list;
}

/**
 * @param {Rng} rng
 * @returns {unknown}
 */
export function randomScalar(rng) {
  const roll = rng.next();
  if (roll < 0.6) return randomString(rng);
  if (roll < 0.7) return rng.int(2 ** 31) - 2 ** 30;
  if (roll < 0.75) return rng.pick([0, 1, -1, 2 ** 53 - 1, -(2 ** 53 - 1), 4111111111111111, 1e21, 5e-324]);
  if (roll < 0.82) return Math.round(rng.next() * 1e6) / 100;
  if (roll < 0.9) return rng.chance(0.5);
  if (roll < 0.95) return null;
  return rng.pick(['', '[Filtered]', '[Filtered:bearer]', 'x', '12345']);
}

/**
 * A `_meta` as a client might send it: remarks of the engine's shape, Sentry's own entries, and junk.
 * @param {Rng} rng
 * @param {number} depth
 * @returns {Record<string, unknown>}
 */
function randomMeta(rng, depth) {
  /** @type {Record<string, unknown>} */
  const meta = {};
  for (let n = 1 + rng.int(3); n > 0; n -= 1) {
    if (depth > 0 && rng.chance(0.6)) {
      const key = rng.chance(0.5) ? rng.pick(['message', 'extra', 'tags', 'exception', '0', '']) : randomKey(rng);
      put(meta, key, randomMeta(rng, depth - 1));
      continue;
    }
    const rem = [];
    for (let r = rng.int(3); r > 0; r -= 1) {
      rem.push(
        rng.pick([
          ['!config', 'x'],
          [
            rng.pick(['secret_param', 'password', 'bearer', '!limit']),
            rng.pick(['s', 'x', 'k', 'q']),
            rng.int(20),
            20 + rng.int(20),
          ],
          [randomString(rng), 'x'],
          ['bearer', 's', 5, 2],
          ['bearer', 's', -1, 3],
          ['rule', 's', 1.5, 3],
          [rng.pick(Object.values(SECRET_SHAPES))(rng)[0], 'x'],
          'x',
          null,
        ]),
      );
    }
    /** @type {Record<string, unknown>} */
    const entry = { rem };
    if (rng.chance(0.5)) entry.len = rng.pick([rng.int(100), -3, 2.5, '12', null]);
    if (rng.chance(0.2)) entry.val = randomString(rng);
    if (rng.chance(0.1)) entry.err = [['invalid', { value: randomString(rng) }]];
    put(meta, '', entry);
  }
  return meta;
}

/**
 * A Sentry-shaped event with random contents: exception with frames and variables, breadcrumbs, tags (object or
 * pairs), request headers, contexts, user, extra; sometimes a client `_meta`.
 * @param {Rng} rng
 * @param {{ depth?: number }} [options]
 * @returns {Record<string, any>}
 */
export function randomEvent(rng, { depth = 4 } = {}) {
  /** @type {Record<string, any>} */
  const event = {
    event_id: chars(rng, '0123456789abcdef', 32),
    timestamp: 1764000000 + rng.int(1e6) + rng.int(1000) / 1000,
    level: rng.pick(['error', 'warning', 'info']),
    platform: rng.pick(['node', 'python', 'javascript']),
  };
  if (rng.chance(0.7)) {
    event.message = rng.chance(0.5)
      ? randomString(rng)
      : { formatted: randomString(rng), params: [randomScalar(rng), randomScalar(rng)] };
  }
  if (rng.chance(0.8)) {
    const frames = [];
    for (let n = rng.int(5); n > 0; n -= 1) {
      frames.push({
        filename: rng.pick(['app.js', 'node:internal/process', '/srv/app/steps/step.py']),
        function: rng.pick(['handle', 'fetch', '<anonymous>', 'Object.<anonymous>']),
        lineno: rng.int(500),
        context_line: randomString(rng),
        pre_context: [randomString(rng), randomString(rng)],
        vars: randomObject(rng, depth),
        in_app: rng.chance(0.5),
      });
    }
    const type = rng.pick(['Error', 'TypeError', 'HTTPError']);
    event.exception = { values: [{ type, value: randomString(rng), stacktrace: { frames } }] };
  }
  if (rng.chance(0.6)) {
    const values = [];
    for (let n = rng.int(6); n > 0; n -= 1) {
      const category = rng.pick(['http', 'console', 'query']);
      values.push({ category, message: randomString(rng), data: randomObject(rng, 1) });
    }
    event.breadcrumbs = { values };
  }
  if (rng.chance(0.7)) {
    /** @type {[string, unknown][]} */
    const pairs = [];
    for (let n = rng.int(5); n > 0; n -= 1) pairs.push([randomKey(rng), randomScalar(rng)]);
    event.tags = rng.chance(0.5) ? pairs : Object.fromEntries(pairs);
  }
  if (rng.chance(0.5)) {
    /** @type {[string, unknown][]} */
    const headers = [['Accept', '*/*'], ['Authorization', randomString(rng)], [randomKey(rng), randomString(rng)]];
    event.request = {
      url: randomString(rng),
      method: 'POST',
      headers: rng.chance(0.5) ? headers : Object.fromEntries(headers),
      query_string: rng.chance(0.5) ? randomString(rng) : [[randomKey(rng), randomString(rng)]],
      data: randomValue(rng, depth),
    };
  }
  if (rng.chance(0.5)) event.contexts = randomObject(rng, depth);
  if (rng.chance(0.5)) {
    event.user = {
      id: randomString(rng),
      email: rng.pick(['alice@example.com', randomString(rng)]),
      ip_address: rng.pick(['203.0.113.9', '2001:db8::1', '{{auto}}']),
    };
  }
  if (rng.chance(0.7)) event.extra = randomObject(rng, depth);
  for (let n = rng.int(3); n > 0; n -= 1) put(event, randomKey(rng), randomValue(rng, depth));
  if (rng.chance(0.25)) put(event, '_meta', randomMeta(rng, 3));
  return event;
}

