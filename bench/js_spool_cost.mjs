// What the JavaScript spool transport costs the application's event loop, next to @sentry/node's own transport.
//
//     node bench/js_spool_cost.mjs                      # 2,000 captures per transport and round, 2 rounds
//     node bench/js_spool_cost.mjs --captures 500 --rounds 1
//
// (after `npm ci` in clients/js, whose @sentry/node it uses). A recording sink (a loopback HTTP server answering
// 200 to every envelope) runs in a process of its own, so that its work is not counted; each transport runs in a
// fresh child process, the two alternating, `--rounds` times. In a child, each capture goes alone, start to end:
//
//   capture   the synchronous `Sentry.captureException(error)` call (a realistic error: four frames, raised and
//             caught);
//   send      the synchronous part of `transport.send(envelope)`: for the spool, serializing and writing the file
//             (open, write, close, rename); for @sentry/node's transport, serializing and starting the request;
//   loop      the event loop's busy time (performance.eventLoopUtilization: wall time minus time idle in the poll
//             phase) from just before the capture until the server's answer has been handled — the capture,
//             the SDK's event processing, send(), and the delivery (for the spool: the sender reading the file,
//             gzip on the thread pool, the request, the answer, deleting the file). Waiting is not counted.
//
// The next capture starts only when the previous one has been answered, so the two paths never overlap. `--warmup`
// captures come first and are not counted. Output: a table on stderr, one JSON line on stdout.

import { performance } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const CLIENT = new URL('../clients/js/', import.meta.url);
const TRANSPORTS = ['sentry-default', 'stackwatch-spool'];

const { values: args } = parseArgs({
  options: {
    captures: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '2' },
    child: { type: 'string' },
    sink: { type: 'boolean', default: false },
    dsn: { type: 'string' },
    'spool-dir': { type: 'string' },
  },
});

if (args.sink) await sink();
else if (args.child) await child(args.child);
else await main();

// --- the sink: a process of its own that answers every envelope with 200 ----------------------------------------

async function sink() {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  process.stdout.write(`${address.port}\n`);
  process.stdin.on('end', () => process.exit(0)).resume();
}

// --- a child: one transport, the measurement ---------------------------------------------------------------------

/** @param {string} transport */
async function child(transport) {
  const Sentry = createRequire(CLIENT)('@sentry/node');
  const { makeSpoolTransport } = await import(new URL('src/transport/index.js', CLIENT).href);
  Sentry.init({
    dsn: args.dsn,
    release: 'bench@1.0.0',
    ...(transport === 'stackwatch-spool' ? { transport: makeSpoolTransport({ spoolDir: args['spool-dir'] }) } : {}),
  });
  // An application has something that keeps it alive (a server, a queue consumer); without it, the event loop
  // would look empty while a capture waits for its delivery, and the spool's exit flush would run.
  const alive = setInterval(() => {}, 1000);
  const client = Sentry.getClient();
  const active = client.getTransport();
  /** @type {(() => void) | undefined} */
  let answered;
  /** @type {number[]} */
  const sendTimes = [];
  const send = active.send.bind(active);
  active.send = (/** @type {unknown} */ envelope) => {
    const started = performance.now();
    const result = send(envelope);
    sendTimes.push(performance.now() - started);
    if (transport === 'sentry-default') result.then(() => answered?.());
    return result;
  };
  if (transport === 'stackwatch-spool') {
    // The spool's delivery ends when the sender has handled the answer (and deleted the file).
    const sender = active.sender;
    const handle = sender.handleAnswer.bind(sender);
    sender.handleAnswer = async (/** @type {any[]} */ ...rest) => {
      const next = await handle(...rest);
      answered?.();
      return next;
    };
  }
  const warmup = Number(args.warmup);
  const total = warmup + Number(args.captures);
  const captureTimes = [];
  const loopTimes = [];
  for (let number = 0; number < total; number += 1) {
    const error = makeError(number);
    const done = new Promise((resolve) => {
      answered = () => resolve(undefined);
    });
    const elu = performance.eventLoopUtilization();
    const started = performance.now();
    Sentry.captureException(error);
    const captured = performance.now() - started;
    await done;
    const busy = performance.eventLoopUtilization(elu).active;
    if (number >= warmup) {
      captureTimes.push(captured);
      loopTimes.push(busy);
    }
  }
  process.stdout.write(
    JSON.stringify({
      transport,
      captures: captureTimes.length,
      capture_ms: stats(captureTimes),
      send_ms: stats(sendTimes.slice(warmup)),
      loop_ms: stats(loopTimes),
    }) + '\n',
  );
  clearInterval(alive);
  process.exit(0);
}

/** @param {number} number */
function makeError(number) {
  const order = { number, lines: [{ sku: `SKU-${number % 97}`, quantity: 1 + (number % 3), price: 19.99 }] };
  const validate = (/** @type {typeof order} */ o, /** @type {number} */ attempt) => {
    const total = o.lines.reduce((sum, line) => sum + line.quantity * line.price, 0);
    if (total > 2) throw new RangeError(`order ${o.number} total ${total.toFixed(2)} exceeds the limit (attempt ${attempt})`);
  };
  const price = (/** @type {typeof order} */ o, /** @type {string} */ currency) => validate(o, currency === 'EUR' ? 1 : 2);
  const step = (/** @type {string} */ runId, /** @type {typeof order} */ o) => price(o, runId ? 'EUR' : 'USD');
  try {
    step(`run_${number}`, order);
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

/** @param {number[]} values milliseconds */
function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (/** @type {number} */ q) => round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * sorted.length) - 1))]);
  return { p50: at(0.5), p99: at(0.99), max: round(sorted[sorted.length - 1]), mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length) };
}

/** @param {number} value */
function round(value) {
  return Math.round(value * 1000) / 1000;
}

// --- the parent: a sink, then the children in turn ---------------------------------------------------------------

async function main() {
  const self = new URL(import.meta.url).pathname;
  const sinkProcess = spawn(process.execPath, [self, '--sink'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => sinkProcess.stdout.once('data', (data) => resolve(Number(String(data).trim()))));
  const dsn = `http://public@127.0.0.1:${port}/1`;
  const spoolRoot = mkdtempSync(join(tmpdir(), 'stackwatch-bench-spool-'));
  /** @type {Record<string, any[]>} */
  const runs = Object.fromEntries(TRANSPORTS.map((t) => [t, []]));
  try {
    for (let round = 0; round < Number(args.rounds); round += 1) {
      for (const transport of TRANSPORTS) {
        const spoolDir = join(spoolRoot, `${transport}-${round}`);
        runs[transport].push(await runChild(self, transport, dsn, spoolDir));
      }
    }
  } finally {
    sinkProcess.stdin.end();
    rmSync(spoolRoot, { recursive: true, force: true });
  }
  report(runs);
}

/**
 * @param {string} self
 * @param {string} transport
 * @param {string} dsn
 * @param {string} spoolDir
 */
function runChild(self, transport, dsn, spoolDir) {
  const command = [self, '--child', transport, '--dsn', dsn, '--spool-dir', spoolDir];
  command.push('--captures', String(args.captures), '--warmup', String(args.warmup));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(STACKWATCH|SENTRY)_/.test(k)));
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, command, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (data) => {
      out += data;
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 180_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line) reject(new Error(`the ${transport} child failed (${code})`));
      else resolve(JSON.parse(line));
    });
  });
}

/** @param {Record<string, any[]>} runs */
function report(runs) {
  /** @type {Record<string, any>} */
  const summary = {};
  const rows = [];
  for (const [transport, results] of Object.entries(runs)) {
    const median = (/** @type {string} */ metric, /** @type {string} */ field) =>
      round(results.map((r) => r[metric][field]).sort((a, b) => a - b)[Math.floor((results.length - 1) / 2)]);
    summary[transport] = Object.fromEntries(
      ['capture_ms', 'send_ms', 'loop_ms'].map((metric) => [metric, { p50: median(metric, 'p50'), p99: median(metric, 'p99') }]),
    );
    summary[transport].rounds = results;
    rows.push(
      `${transport.padEnd(17)} ${['capture_ms', 'send_ms', 'loop_ms'].map((m) => `${m.padEnd(10)} p50 ${median(m, 'p50').toFixed(3)} p99 ${median(m, 'p99').toFixed(3)}`).join('   ')}`,
    );
  }
  const spool = summary['stackwatch-spool'].loop_ms;
  const plain = summary['sentry-default'].loop_ms;
  const ratio = { p50: round(spool.p50 / plain.p50), p99: round(spool.p99 / plain.p99) };
  const machine = `${cpus().length} cores, node ${process.version}, @sentry/node ${createRequire(CLIENT)('@sentry/node/package.json').version}`;
  process.stderr.write(`${rows.join('\n')}\nloop time, spool / default: p50 x${ratio.p50}, p99 x${ratio.p99} (${machine})\n`);
  process.stdout.write(JSON.stringify({ captures: Number(args.captures), rounds: Number(args.rounds), machine, ratio, ...summary }) + '\n');
}
