// Properties of the redaction engine over seeded random input: scrubText and scrubEvent never throw, never change
// their input nor share a container with it, scrub their own output to itself, and a secret planted in any of the
// places secrets are known to sit never reaches the output.
//
// Each case has its own seed (the base seed plus its number); a failure names it. To rerun one case:
//   SCRUB_TEST_SEED=<seed> SCRUB_TEST_CASES=1 node --test test/scrub-property.test.js
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { scrubEvent, scrubText } from '../src/scrub/index.js';
import { prng, put } from './support/prng.js';
import { randomEvent, randomString, randomValue } from './support/generate.js';
import { plantSecret } from './support/secrets.js';

const SEED = Number(process.env.SCRUB_TEST_SEED ?? 20261203);
const CASES = Number(process.env.SCRUB_TEST_CASES ?? 2000);

/**
 * Run `check` for CASES seeds; a failure is rethrown with the seed that reproduces it.
 * @param {(rng: import('./support/prng.js').Rng, seed: number) => void} check
 * @param {number} [cases]
 */
function forSeeds(check, cases = CASES) {
  for (let i = 0; i < cases; i += 1) {
    const seed = SEED + i;
    try {
      check(prng(seed), seed);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`case seed ${seed} (rerun: SCRUB_TEST_SEED=${seed} SCRUB_TEST_CASES=1): ${message}`, {
        cause: error,
      });
    }
  }
}

/**
 * @param {import('./support/prng.js').Rng} rng
 * @returns {import('../src/scrub/index.js').ScrubOptions}
 */
function randomOptions(rng) {
  return rng.pick([{}, { scrubEmails: true }, { scrubIps: true }, { scrubEmails: true, scrubIps: true }]);
}

/**
 * Every object and array reachable from `root` (cycles followed once).
 * @param {unknown} root
 */
function containers(root) {
  const seen = new Set();
  const stack = [root];
  while (stack.length) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null || seen.has(value)) continue;
    seen.add(value);
    for (const key of Object.keys(value)) stack.push(/** @type {any} */ (value)[key]);
  }
  return seen;
}

/**
 * @param {string} text
 * @param {number} start
 * @param {number} end
 */
function codePointSlice(text, start, end) {
  return [...text].slice(start, end).join('');
}

test(`scrubText: ${CASES} strings: no throw, remarks point at labels, idempotent`, () => {
  forSeeds((rng) => {
    const text = randomString(rng);
    const options = randomOptions(rng);
    const [result, remarks] = scrubText(text, options);
    assert.equal(typeof result, 'string');
    assert.equal(remarks.length > 0, result !== text, 'remarks exactly when the text changed');
    for (const { rule, kind, start, end } of remarks) {
      assert.equal(kind, 's');
      assert.equal(codePointSlice(result, start, end), `[Filtered:${rule}]`);
    }
    assert.deepEqual(scrubText(result, options), [result, []], `not idempotent on ${JSON.stringify(text)}`);
  });
});

test(`scrubEvent: ${CASES} events: no throw, input unchanged and unshared, plain JSON out, idempotent`, () => {
  forSeeds((rng, seed) => {
    const event = randomEvent(rng);
    const options = randomOptions(rng);
    const scrubbed = scrubEvent(event, options);
    // The generator is deterministic: a second event from the same seed is what the first was before scrubbing.
    assert.deepStrictEqual(event, randomEvent(prng(seed)), 'the input was changed');
    const given = containers(event);
    for (const container of containers(scrubbed)) assert.ok(!given.has(container), 'the output shares a container');
    assert.deepStrictEqual(JSON.parse(JSON.stringify(scrubbed)), scrubbed, 'the output is not plain JSON');
    assert.deepStrictEqual(scrubEvent(scrubbed, options), scrubbed, 'scrubbing the output changed it');
  });
});

test(`scrubEvent: a secret planted in ${CASES} events never reaches the output`, () => {
  forSeeds((rng) => {
    const event = randomEvent(rng);
    const { secret, where } = plantSecret(rng, event);
    const text = JSON.stringify(scrubEvent(event, randomOptions(rng)));
    assert.ok(!text.includes(secret), `${JSON.stringify(secret)} planted at ${where} is in the output: ${text}`);
  });
});

test('scrubEvent: cycles and shared containers', () => {
  forSeeds((rng, seed) => {
    const event = randomEvent(rng);
    const all = [...containers(event)];
    // Back-references from random containers to random others (an ancestor makes a cycle), and shared subtrees.
    for (let n = 1 + rng.int(4); n > 0; n -= 1) {
      const from = rng.pick(all);
      const to = rng.pick(all);
      if (Array.isArray(from)) from.push(to);
      else put(from, `ref${n}`, to);
    }
    const snapshot = [...containers(event)].map((c) => [c, Array.isArray(c) ? c.slice() : { ...c }]);
    const options = randomOptions(rng);
    const scrubbed = scrubEvent(event, options);
    for (const [container, before] of snapshot) assert.deepStrictEqual(container, before, 'the input was changed');
    // The output holds no cycle (JSON.stringify would throw) and scrubs to itself.
    const text = JSON.stringify(scrubbed);
    assert.deepStrictEqual(scrubEvent(JSON.parse(text), options), JSON.parse(text));
    assert.ok(seed >= 0);
  }, 300);
});

test('scrubEvent: a container that holds itself is "[Circular ~]" where it recurs; a shared one is copied twice', () => {
  /** @type {Record<string, any>} */
  const loop = { password: 'hunter2!', note: 'token=abc123def' };
  loop.self = loop;
  loop.list = [loop, 1];
  const shared = { url: 'https://h.io/?token=abcdef123' };
  const scrubbed = scrubEvent({ extra: { loop, a: shared, b: [shared] } });
  assert.deepStrictEqual(scrubbed.extra.loop, {
    password: '[Filtered]',
    note: 'token=[Filtered:secret_param]',
    self: '[Circular ~]',
    list: ['[Circular ~]', 1],
  });
  assert.deepStrictEqual(scrubbed.extra.a, { url: 'https://h.io/?token=[Filtered:secret_param]' });
  assert.deepStrictEqual(scrubbed.extra.b, [scrubbed.extra.a]);
  assert.notEqual(scrubbed.extra.b[0], scrubbed.extra.a);
  /** @type {Record<string, any>} */
  const top = { message: 'x' };
  top.extra = { back: top };
  assert.deepStrictEqual(scrubEvent(top), { message: 'x', extra: { back: '[Circular ~]' } });
});

test('scrubEvent: nesting 20,000 deep, a secret at the bottom', () => {
  /** @type {unknown} */
  let value = 'Bearer abcdef1234567890';
  for (let i = 0; i < 10000; i += 1) value = { k: [value] };
  const scrubbed = scrubEvent({ extra: value });
  let node = scrubbed.extra;
  for (let i = 0; i < 10000; i += 1) node = node.k[0];
  assert.equal(node, 'Bearer [Filtered:bearer]');
  // The _meta path to it is as deep.
  let meta = scrubbed._meta.extra;
  for (let i = 0; i < 10000; i += 1) meta = meta.k['0'];
  assert.deepStrictEqual(meta[''], { rem: [['bearer', 's', 7, 24]], len: 23 });
});

test('scrubText and scrubEvent: huge strings (1 MB) of the shapes the rules look for', () => {
  const units = ['a', 'Ab1+', '4111 ', 'token=', 'a:b@', 'https://', 'Bearer ', 'AKIA', 'password="', 'DE89 ', '😀',
    '-----BEGIN PRIVATE KEY-----', 'eyJhbGciOi.', '\ud800', 'x ghp_', '%40', 'key_'];
  for (const unit of units) {
    const text = unit.repeat(Math.ceil(1e6 / unit.length));
    const [result] = scrubText(text);
    assert.deepEqual(scrubText(result), [result, []], JSON.stringify(unit));
  }
  const rng = prng(SEED);
  const big = randomString(rng).repeat(2000) + ' Bearer abcdef1234567890 ' + 'x'.repeat(1e6);
  const scrubbed = scrubEvent({ message: big, extra: { [big]: big } });
  assert.ok(!JSON.stringify(scrubbed).includes('abcdef1234567890'));
});

test('scrubEvent: prototype-like keys are plain keys, in the event and in _meta', () => {
  const event = JSON.parse(
    '{"__proto__": {"password": "hunter2!"}, "constructor": "token=abcdef123", "extra": {"__proto__": "Bearer abcdef123456",' +
      ' "hasOwnProperty": {"secret": 1}, "toString": ["x"], "valueOf": null},' +
      ' "_meta": {"__proto__": {"": {"rem": [["!config", "x"]]}}, "constructor": {"": {"len": 3}}}}',
  );
  const scrubbed = scrubEvent(event);
  assert.equal(Object.getPrototypeOf(scrubbed), Object.prototype);
  assert.equal(Object.getPrototypeOf(scrubbed.extra), Object.prototype);
  assert.deepStrictEqual(Object.keys(scrubbed).sort(), ['__proto__', '_meta', 'constructor', 'extra']);
  assert.deepStrictEqual(scrubbed.__proto__, { password: '[Filtered]' });
  assert.equal(scrubbed.constructor, 'token=[Filtered:secret_param]');
  assert.equal(scrubbed.extra.__proto__, 'Bearer [Filtered:bearer]');
  assert.deepStrictEqual(scrubbed.extra.hasOwnProperty, { secret: '[Filtered]' });
  assert.deepStrictEqual(scrubbed._meta.__proto__, {
    '': { rem: [['!config', 'x']] },
    password: { '': { rem: [['password', 'x']], len: 8 } },
  });
  // The client's remark at the same path keeps its length, the new remark is added.
  assert.deepStrictEqual(scrubbed._meta.constructor, { '': { len: 3, rem: [['secret_param', 's', 6, 29]] } });
  assert.equal(/** @type {any} */ ({}).password, undefined, 'Object.prototype was changed');
});

test('scrubEvent: values JSON has no spelling for are scrubbed as JSON.stringify sees them, and never throw', () => {
  const rng = prng(SEED);
  /** @type {Record<string, any>} */
  const odd = {
    date: new Date(0),
    map: new Map([['password', 'x']]),
    set: new Set([1]),
    bytes: new Uint8Array([1, 2]),
    big: 10n,
    undef: undefined,
    fn() {},
    sym: Symbol('s'),
    nan: NaN,
    inf: -Infinity,
    boxed: new String('Bearer abcdef123456'),
    json: { toJSON: () => ({ note: 'token=abcdef123' }) },
    badJson: {
      toJSON() {
        throw new Error('no');
      },
    },
    [Symbol('key')]: 'dropped',
    nested: randomValue(rng, 3),
  };
  Object.defineProperty(odd, 'hidden', { value: 'Bearer abcdef123456', enumerable: false });
  const scrubbed = scrubEvent({ extra: odd, password: 12n });
  assert.equal(scrubbed.extra.date, '1970-01-01T00:00:00.000Z');
  assert.deepStrictEqual(scrubbed.extra.map, {});
  assert.deepStrictEqual(scrubbed.extra.bytes, { 0: 1, 1: 2 });
  assert.equal(scrubbed.extra.big, 10n);
  assert.equal(scrubbed.password, '[Filtered]');
  assert.deepStrictEqual(scrubbed.extra.boxed, Object.fromEntries([...'Bearer abcdef123456'].map((c, i) => [i, c])));
  assert.deepStrictEqual(scrubbed.extra.json, { note: 'token=[Filtered:secret_param]' });
  assert.equal(scrubbed.extra.badJson, null);
  assert.ok(!('hidden' in scrubbed.extra));
});

test('scrubEvent: a property that cannot be read is left out, as an object that is not plain has it', () => {
  const boom = () => {
    throw new Error('unreadable');
  };
  /** @type {Record<string, any>} */
  const plain = { ok: 'token=abcdef123' };
  Object.defineProperty(plain, 'bad', { get: boom, enumerable: true });
  const list = ['Bearer abcdef123456', 2];
  Object.defineProperty(list, 1, { get: boom, enumerable: true });
  class Thing {
    get bad() {
      return boom();
    }
  }
  const thing = new Thing();
  Object.defineProperty(thing, 'own', { get: boom, enumerable: true });
  const keysThrow = new Proxy({}, { ownKeys: boom });
  const event = { extra: { plain, list, thing, keysThrow } };
  Object.defineProperty(event, 'top', { get: boom, enumerable: true });
  const scrubbed = scrubEvent(event);
  assert.deepStrictEqual(scrubbed, {
    extra: { plain: { ok: 'token=[Filtered:secret_param]' }, list: ['Bearer [Filtered:bearer]', null], thing: {}, keysThrow: {} },
    _meta: {
      extra: {
        plain: { ok: { '': { rem: [['secret_param', 's', 6, 29]], len: 15 } } },
        list: { 0: { '': { rem: [['bearer', 's', 7, 24]], len: 19 } } },
      },
    },
  });
});

test('scrubEvent and scrubText: what is not an event or a text is a TypeError', () => {
  for (const bad of [null, undefined, 'x', 1, [], [{ message: 'x' }]]) {
    assert.throws(() => scrubEvent(/** @type {any} */ (bad)), TypeError);
  }
  for (const bad of [null, undefined, 1, {}, ['x']]) assert.throws(() => scrubText(/** @type {any} */ (bad)), TypeError);
});
