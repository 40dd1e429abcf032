// The JavaScript engine against the Python one, the reference (the server runs it on every event): the same seeded
// events and strings go through both, and every result must be the same, `_meta` included.
//
// The Python engine is run from this repository's src/ by the repository's interpreter: <repo>/.venv/bin/python
// (what `make test` creates), else $STACKWATCH_PYTHON, else python3 on the PATH (3.11 or later; the engine needs
// the standard library only). Without one the test is skipped, or fails when STACKWATCH_TEST_REQUIRE names node.
//
// The engines' Unicode tables are of different versions (Python 3.11 has Unicode 14, Node 20 the one of its ICU,
// 15.1 or later): a letter or mark added since is a letter or mark to one engine and unassigned to the other, and
// the two may then rightly disagree (a key "si\u1ae7g" is "sig" to a newer fold). A case holding a code point that
// only one of them knows is left out of the comparison and counted.
// To rerun from another seed: SCRUB_TEST_SEED=<seed> node --test test/scrub-differential.test.js
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { scrubEvent, scrubText } from '../src/scrub/index.js';
import { prng } from './support/prng.js';
import { mutate, randomEvent, randomString } from './support/generate.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SRC = join(REPO, 'src');
const SEED = Number(process.env.SCRUB_TEST_SEED ?? 20261204);
const EVENTS = Number(process.env.SCRUB_TEST_EVENTS ?? 300);
const STRINGS = Number(process.env.SCRUB_TEST_STRINGS ?? 3000);
const REQUIRED = (process.env.STACKWATCH_TEST_REQUIRE ?? '').replaceAll(',', ' ').split(/\s+/).includes('node');

// Reads the cases, scrubs each with the engine in SRC, writes the results; reports which engine file it ran.
const RUNNER = `
import json, sys, unicodedata
sys.path.insert(0, sys.argv[1])
import stackwatch.scrub
from stackwatch.scrub import ScrubOptions, scrub_event, scrub_text
with open(sys.argv[2], encoding="utf-8") as f:
    cases = json.load(f)
def unassigned(value, found):
    if isinstance(value, str):
        found.update(ord(ch) for ch in value if unicodedata.category(ch) == "Cn")
    elif isinstance(value, dict):
        for k, v in value.items():
            unassigned(k, found)
            unassigned(v, found)
    elif isinstance(value, list):
        for v in value:
            unassigned(v, found)
    return found
results = []
for case in cases:
    opts = case["options"]
    options = ScrubOptions(scrub_emails=bool(opts.get("scrubEmails")), scrub_ips=bool(opts.get("scrubIps")))
    if "event" in case:
        results.append(scrub_event(case["event"], options))
    else:
        text, remarks = scrub_text(case["text"], options)
        results.append([text, [r.to_meta() for r in remarks]])
    results[-1] = [results[-1], sorted(unassigned(case.get("event", case.get("text")), set()))]
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump({"engine": stackwatch.scrub.__file__, "unicode": unicodedata.unidata_version, "results": results}, f)
`;

/** The interpreter to run the Python engine with, and where it was found; null when there is none. */
function findPython() {
  const venv = join(REPO, '.venv', 'bin', 'python');
  /** @type {[string, string][]} */
  const candidates = [[venv, '<repo>/.venv']];
  if (process.env.STACKWATCH_PYTHON) candidates.push([process.env.STACKWATCH_PYTHON, 'STACKWATCH_PYTHON']);
  candidates.push(['python3', 'python3 on the PATH']);
  for (const [python, from] of candidates) {
    if (python === venv && !existsSync(venv)) continue;
    const probe = spawnSync(python, ['-c', 'import sys; sys.exit(sys.version_info < (3, 11))'], { stdio: 'ignore' });
    if (probe.status === 0) return { python, from };
  }
  return null;
}

const UNASSIGNED = /\p{Cn}/u;

/**
 * The code points of the strings and keys in `value` that are unassigned in this engine's Unicode tables, sorted.
 * @param {unknown} value
 */
function unassigned(value) {
  /** @type {Set<number>} */
  const found = new Set();
  const stack = [value];
  while (stack.length) {
    const item = stack.pop();
    if (typeof item === 'string') {
      if (UNASSIGNED.test(item)) for (const ch of item) if (UNASSIGNED.test(ch)) found.add(/** @type {number} */ (ch.codePointAt(0)));
    } else if (typeof item === 'object' && item !== null) {
      for (const key of Object.keys(item)) stack.push(key, /** @type {any} */ (item)[key]);
    }
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * @param {import('./support/prng.js').Rng} rng
 * @returns {{ scrubEmails?: boolean, scrubIps?: boolean }}
 */
function randomOptions(rng) {
  return rng.pick([{}, {}, { scrubEmails: true }, { scrubIps: true }, { scrubEmails: true, scrubIps: true }]);
}

/**
 * The first place where `a` and `b` differ as JSON values (key order aside), or null.
 * @param {unknown} a
 * @param {unknown} b
 * @param {string} [path]
 * @returns {{ path: string, js: unknown, python: unknown } | null}
 */
function firstDifference(a, b, path = '$') {
  if (Object.is(a, b)) return null;
  const bothObjects = typeof a === 'object' && a !== null && typeof b === 'object' && b !== null;
  if (!bothObjects || Array.isArray(a) !== Array.isArray(b)) return { path, js: a, python: b };
  const x = /** @type {Record<string, unknown>} */ (a);
  const y = /** @type {Record<string, unknown>} */ (b);
  if (Array.isArray(x) && Array.isArray(y) && x.length !== y.length) {
    return { path: `${path}.length`, js: x.length, python: y.length };
  }
  const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])];
  for (const key of keys) {
    const where = `${path}[${JSON.stringify(key)}]`;
    if (!Object.hasOwn(x, key) || !Object.hasOwn(y, key)) {
      return { path: where, js: Object.hasOwn(x, key) ? x[key] : '(missing)', python: Object.hasOwn(y, key) ? y[key] : '(missing)' };
    }
    const found = firstDifference(x[key], y[key], where);
    if (found !== null) return found;
  }
  return null;
}

/**
 * @param {unknown} value
 * @param {number} [limit]
 */
function shown(value, limit = 600) {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > limit ? `${text.slice(0, limit)}… (${text.length} characters)` : text;
}

/**
 * The cases: EVENTS random events, then STRINGS random and mutated strings, each with random options.
 * @returns {({ seed: number, options: object, event: Record<string, any> } | { seed: number, options: object, text: string })[]}
 */
function cases() {
  const out = [];
  for (let i = 0; i < EVENTS; i += 1) {
    const rng = prng(SEED + i);
    out.push({ seed: SEED + i, options: randomOptions(rng), event: randomEvent(rng) });
  }
  for (let i = 0; i < STRINGS; i += 1) {
    const rng = prng(SEED + EVENTS + i);
    const text = rng.chance(0.3) ? mutate(rng, randomString(rng)) : randomString(rng);
    out.push({ seed: SEED + EVENTS + i, options: randomOptions(rng), text });
  }
  return out;
}

const python = findPython();

test(`the JavaScript engine gives what the Python engine gives (${EVENTS} events, ${STRINGS} strings)`, (t) => {
  if (python === null) {
    const why = 'no Python 3.11+ to run the reference engine (<repo>/.venv, $STACKWATCH_PYTHON, python3)';
    if (REQUIRED) assert.fail(`${why}, and STACKWATCH_TEST_REQUIRE names node`);
    t.skip(why);
    return;
  }
  const all = cases();
  const dir = mkdtempSync(join(tmpdir(), 'stackwatch-scrub-diff-'));
  let keep = false;
  try {
    const input = join(dir, 'cases.json');
    const output = join(dir, 'results.json');
    writeFileSync(input, JSON.stringify(all));
    const run = spawnSync(python.python, ['-c', RUNNER, SRC, input, output], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(run.status, 0, `${python.python} (${python.from}) failed: ${run.error ?? ''}${run.stderr}`);
    const { engine, unicode, results } = JSON.parse(readFileSync(output, 'utf8'));
    assert.equal(engine, join(SRC, 'stackwatch', 'scrub', '__init__.py'), 'Python ran an engine from elsewhere');
    assert.equal(results.length, all.length);
    let versionCases = 0;
    for (let i = 0; i < all.length; i += 1) {
      const c = all[i];
      const [result, pythonUnassigned] = results[i];
      if (firstDifference(unassigned('event' in c ? c.event : c.text), pythonUnassigned) !== null) {
        versionCases += 1; // a code point one engine's Unicode tables have and the other's lack
        continue;
      }
      const js = 'event' in c ? scrubEvent(c.event, c.options) : scrubText(c.text, c.options);
      const mine = 'event' in c ? js : [js[0], /** @type {any[]} */ (js[1]).map((r) => [r.rule, r.kind, r.start, r.end])];
      const diff = firstDifference(JSON.parse(JSON.stringify(mine)), result);
      if (diff !== null) {
        keep = true;
        writeFileSync(join(dir, 'failing-case.json'), JSON.stringify(c));
        assert.fail(
          `case ${i} (seed ${c.seed}, options ${JSON.stringify(c.options)}) differs at ${diff.path}:\n` +
            `  JavaScript: ${shown(diff.js)}\n  Python:     ${shown(diff.python)}\n` +
            `  input: ${shown('event' in c ? c.event : c.text)}\n  (the case is in ${join(dir, 'failing-case.json')})`,
        );
      }
    }
    t.diagnostic(
      `Python: ${python.python} (${python.from}), Unicode ${unicode}; Node ${process.version}, Unicode ` +
        `${process.versions.unicode}; ${versionCases} of ${all.length} cases left out for a code point only one knows`,
    );
    assert.ok(versionCases * 20 < all.length, 'too many cases left out: the generator needs other characters');
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
});

test('firstDifference names the first path where two values differ', () => {
  assert.equal(firstDifference({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] }), null);
  assert.deepEqual(firstDifference({ a: [1, { b: 'x' }] }, { a: [1, { b: 'y' }] }), { path: '$["a"]["1"]["b"]', js: 'x', python: 'y' });
  assert.deepEqual(firstDifference({ a: 1 }, { a: 1, c: 2 }), { path: '$["c"]', js: '(missing)', python: 2 });
  assert.deepEqual(firstDifference([1], [1, 2]), { path: '$.length', js: 1, python: 2 });
  assert.deepEqual(firstDifference({ a: [] }, { a: {} }), { path: '$["a"]', js: [], python: {} });
});
