#!/usr/bin/env node
// Cost of the JavaScript redaction engine (clients/js, `scrubEvent`) next to the Python one (`stackwatch.scrub`), per
// event, measured in one run on the same events: the `event` items of the captured SDK requests in
// tests/fixtures/sdk-envelopes (decoded by ingest's own code, as bench/scrub_cost.py does) and its synthetic busy
// event. bench/README.md describes the method and the results.
//
//   node bench/js_scrub_cost.mjs                  # ~10 s: table on stderr, one JSON line on stdout
//   node bench/js_scrub_cost.mjs --rounds 3       # Python and JavaScript alternately, medians of the rounds
//   node bench/js_scrub_cost.mjs --events 4000 --python /path/to/python
//
// The Python side needs the repository's virtualenv (ingest's decoders): <repo>/.venv/bin/python, which
// `make test` creates, else $STACKWATCH_PYTHON, or --python. It runs the engine in <repo>/src whatever is installed.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';

import { clearCache, scrubEvent } from '../clients/js/src/scrub/index.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const OPTION_SETS = { default: {}, 'emails+ips': { scrubEmails: true, scrubIps: true } };

// The Python half. `dump` writes the events both engines scrub: per set of events, a warm-up list and a timed
// list, each event a different variant (bench/scrub_cost.py's `vary`: new ids, timestamps and volatile strings), and
// the scrubbed fixtures for the comparison. `measure` times Python's scrub_event on them as the JavaScript side does.
const PYTHON_SIDE = String.raw`
import gc, json, os, platform, sys, time
repo, mode, path, count, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path[:0] = [os.path.join(repo, "src"), repo]
import stackwatch.scrub
from stackwatch.scrub import scrub_event
from stackwatch.scrub.text import clear_cache
from bench.scrub_cost import OPTION_SETS, busy_event, fixture_events, vary

def variants(events, start, n):
    return [vary(events[i % len(events)], start + i) for i in range(n)]

if mode == "dump":
    fixtures = [event for _, event in fixture_events()]
    sets = {"fixtures": fixtures, "busy": [busy_event(seed)]}
    data = {"fixtures": len(fixtures), "sets": {}, "scrubbed": {}}
    for name, events in sets.items():
        n = count if name == "fixtures" else max(20, count // 10)
        data["sets"][name] = {
            "warm": variants(events, seed * 10**6 + 500_000, n),
            "timed": variants(events, seed * 10**6, n),
        }
    for option, options in OPTION_SETS.items():
        data["scrubbed"][option] = [scrub_event(event, options) for event in fixtures + sets["busy"]]
    data["originals"] = fixtures + sets["busy"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    print(json.dumps({"python": platform.python_version(), "engine": stackwatch.scrub.__file__}))
else:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    rows = {}
    clock = time.perf_counter_ns
    for name, lists in data["sets"].items():
        for option, options in OPTION_SETS.items():
            clear_cache()
            for event in lists["warm"]:
                scrub_event(event, options)
            gc.collect()
            gc.disable()  # as in the digest's batches, and as bench/scrub_cost.py measures
            try:
                warm = []
                for event in lists["timed"]:
                    start = clock()
                    scrub_event(event, options)
                    warm.append((clock() - start) / 1000)
                cold = []
                for event in lists["timed"][: max(10, len(lists["timed"]) // 4)]:
                    clear_cache()
                    start = clock()
                    scrub_event(event, options)
                    cold.append((clock() - start) / 1000)
            finally:
                gc.enable()
            rows[name + "/" + option] = {"warm": warm, "cold": cold}
    print(json.dumps(rows))
`;

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    python: { type: 'string' },
  },
});
const COUNT = Math.max(20, Number(args.events));
const ROUNDS = Math.max(1, Number(args.rounds));

/** The interpreter of the repository's virtualenv (or the one named). */
function findPython() {
  if (args.python) return args.python;
  const venv = join(REPO, '.venv', 'bin', 'python');
  if (existsSync(venv)) return venv;
  if (process.env.STACKWATCH_PYTHON) return process.env.STACKWATCH_PYTHON;
  console.error('js_scrub_cost: no Python: make (which creates .venv), --python PATH or STACKWATCH_PYTHON');
  process.exit(2);
}

/**
 * @param {string} python
 * @param {string[]} rest
 */
function runPython(python, rest) {
  const run = spawnSync(python, ['-c', PYTHON_SIDE, REPO, ...rest], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 600_000,
  });
  if (run.status !== 0) {
    console.error(`js_scrub_cost: ${python} failed: ${run.error ?? ''}${run.stderr}`);
    process.exit(1);
  }
  return JSON.parse(run.stdout);
}

/**
 * Microseconds per scrubEvent call: warm (the string cache as traffic leaves it) and cold (cleared before each call).
 * @param {{ warm: any[], timed: any[] }} lists
 * @param {object} options
 */
function measureJs(lists, options) {
  clearCache();
  for (const event of lists.warm) scrubEvent(event, options);
  const warm = [];
  for (const event of lists.timed) {
    const start = process.hrtime.bigint();
    scrubEvent(event, options);
    warm.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  const cold = [];
  for (const event of lists.timed.slice(0, Math.max(10, lists.timed.length >> 2))) {
    clearCache();
    const start = process.hrtime.bigint();
    scrubEvent(event, options);
    cold.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return { warm, cold };
}

/** @param {number[]} samples */
function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (/** @type {number} */ q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { median: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

/** @param {number[]} values */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const python = findPython();
const dir = mkdtempSync(join(tmpdir(), 'stackwatch-js-scrub-cost-'));
try {
  const file = join(dir, 'events.json');
  const about = runPython(python, ['dump', file, String(COUNT), args.seed]);
  const data = JSON.parse(readFileSync(file, 'utf8'));

  // The two engines must agree on these events before their costs mean anything side by side.
  let same = 0;
  let total = 0;
  for (const [option, options] of Object.entries(OPTION_SETS)) {
    data.originals.forEach((/** @type {any} */ event, /** @type {number} */ i) => {
      total += 1;
      if (isDeepStrictEqual(JSON.parse(JSON.stringify(scrubEvent(event, options))), data.scrubbed[option][i])) same += 1;
    });
  }

  /** @type {Record<string, { js: any[], py: any[] }>} */
  const rounds = {};
  for (let round = 0; round < ROUNDS; round += 1) {
    const py = runPython(python, ['measure', file, '0', '0']);
    for (const [name, lists] of Object.entries(data.sets)) {
      for (const [option, options] of Object.entries(OPTION_SETS)) {
        const key = `${name}/${option}`;
        rounds[key] ??= { js: [], py: [] };
        rounds[key].js.push(measureJs(/** @type {any} */ (lists), options));
        rounds[key].py.push(py[key]);
      }
    }
  }

  const rows = Object.entries(rounds).map(([key, { js, py }]) => {
    const [events, options] = key.split('/');
    /** @param {any[]} runs @param {'warm' | 'cold'} kind @param {'median' | 'p99' | 'mean'} what */
    const pick = (runs, kind, what) => Math.round(median(runs.map((r) => stats(r[kind])[what])) * 10) / 10;
    const row = {
      events,
      options,
      calls: js[0].warm.length,
      js_median_us: pick(js, 'warm', 'median'),
      js_mean_us: pick(js, 'warm', 'mean'),
      js_p99_us: pick(js, 'warm', 'p99'),
      js_cold_median_us: pick(js, 'cold', 'median'),
      py_median_us: pick(py, 'warm', 'median'),
      py_mean_us: pick(py, 'warm', 'mean'),
      py_p99_us: pick(py, 'warm', 'p99'),
      py_cold_median_us: pick(py, 'cold', 'median'),
    };
    return {
      ...row,
      ratio_median: Math.round((row.js_median_us / row.py_median_us) * 100) / 100,
      ratio_mean: Math.round((row.js_mean_us / row.py_mean_us) * 100) / 100,
      ratio_cold_median: Math.round((row.js_cold_median_us / row.py_cold_median_us) * 100) / 100,
    };
  });

  const lines = [
    `scrubEvent / scrub_event cost per event: ${data.fixtures} fixture events and 1 busy event, each call a different ` +
      `variant; Node ${process.version}, Python ${about.python}; ${ROUNDS} round(s); outputs identical on ` +
      `${same} of ${total} fixture scrubs`,
    'events    options     calls  JS median µs    mean     p99    cold | Py median µs    mean     p99    cold | JS/Py median  mean  cold',
    '--------  ----------  -----  ------------  ------  ------  ------ | ------------  ------  ------  ------ | ------------  ----  ----',
  ];
  const f = (/** @type {number} */ v, /** @type {number} */ w) => v.toFixed(1).padStart(w);
  for (const r of rows) {
    lines.push(
      `${r.events.padEnd(8)}  ${r.options.padEnd(10)}  ${String(r.calls).padStart(5)}  ${f(r.js_median_us, 12)}  ` +
        `${f(r.js_mean_us, 6)}  ${f(r.js_p99_us, 6)}  ${f(r.js_cold_median_us, 6)} | ${f(r.py_median_us, 12)}  ` +
        `${f(r.py_mean_us, 6)}  ${f(r.py_p99_us, 6)}  ${f(r.py_cold_median_us, 6)} | ` +
        `${r.ratio_median.toFixed(2).padStart(12)}  ${r.ratio_mean.toFixed(2).padStart(4)}  ${r.ratio_cold_median.toFixed(2).padStart(4)}`,
    );
  }
  console.error(lines.join('\n'));
  console.log(
    JSON.stringify({
      bench: 'js_scrub_cost',
      node: process.version,
      python: about.python,
      python_engine: about.engine,
      fixture_events: data.fixtures,
      rounds: ROUNDS,
      outputs_identical: same === total,
      rows,
    }),
  );
  if (same !== total) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
