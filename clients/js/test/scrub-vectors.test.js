// Every vector of tests/vectors/scrub.json (the contract the Python engine passes too), one test each.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { scrubEvent, scrubText } from '../src/scrub/index.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../../tests/vectors/scrub.json', import.meta.url), 'utf8'));

/**
 * The vector's options (Python's names) as the JavaScript engine spells them.
 * @param {{ options?: Record<string, boolean> }} vector
 */
function options(vector) {
  return Object.fromEntries(
    Object.entries(vector.options ?? {}).map(([name, on]) => [name.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), on]),
  );
}

/**
 * `text` from code point `start` to `end` (remarks count code points).
 * @param {string} text
 * @param {number} start
 * @param {number} end
 */
function slice(text, start, end) {
  return [...text].slice(start, end).join('');
}

test('the vectors are all there', () => {
  assert.ok(VECTORS.length >= 420, `${VECTORS.length} vectors`);
  assert.equal(new Set(VECTORS.map((/** @type {{ name: string }} */ v) => v.name)).size, VECTORS.length);
});

for (const vector of VECTORS) {
  test(vector.name, () => {
    const opts = options(vector);
    const { input, expected } = vector;
    if (typeof input === 'string') {
      const [result, remarks] = scrubText(input, opts);
      assert.equal(result, expected);
      assert.equal(remarks.length > 0, result !== input);
      for (const remark of remarks) assert.ok(slice(result, remark.start, remark.end).startsWith('[Filtered'), remark.rule);
      assert.deepEqual(scrubText(result, opts), [result, []]);
    } else if ('event' in input) {
      const before = structuredClone(input.event);
      const result = scrubEvent(input.event, opts);
      assert.deepEqual(result, expected);
      assert.deepEqual(input.event, before);
      assert.deepEqual(scrubEvent(result, opts), result);
      const text = JSON.stringify(result);
      assert.deepEqual(
        vector.secrets.filter((/** @type {string} */ s) => text.includes(s)),
        [],
      );
    } else {
      const event = { extra: { [input.key]: input.value } };
      assert.deepEqual(scrubEvent(event, opts).extra[input.key], expected);
    }
  });
}
