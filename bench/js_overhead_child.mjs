/**
 * The child process of bench/js_overhead.mjs: one arm (plain `@sentry/node` or `@stackwatch/sdk`) against one
 * server, in a process of its own so that the SDKs share no global state. Phase `capture` captures and flushes,
 * then prints its measurements as one JSON line; phase `replay` opens an existing spool and flushes until told to
 * stop (a line on stdin) or `--replay-ms` have passed.
 */

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'clients', 'js');

/** @typedef {{ [key: string]: number }} Counts */

/** The ESM entry of clients/js's @sentry/node: the same module instance that @stackwatch/sdk imports. */
export function sentryEntry() {
  const folder = path.join(CLIENT, 'node_modules', '@sentry', 'node');
  if (!existsSync(path.join(folder, 'package.json'))) {
    throw new Error('clients/js/node_modules/@sentry/node is missing: run `cd clients/js && npm ci` first');
  }
  const manifest = JSON.parse(readFileSync(path.join(folder, 'package.json'), 'utf8'));
  return pathToFileURL(path.join(folder, manifest.exports?.['.']?.import?.default ?? manifest.module)).href;
}

class PaymentDeclined extends Error {
  name = 'PaymentDeclined';
}

/** @param {{ number: number, total: string }} order */
function callProvider(order) {
  throw new TypeError(`fetch failed: connect ECONNRESET 10.0.${order.number % 250}.7:443`);
}

/** @param {{ number: number, total: string }} order */
function charge(order) {
  try {
    callProvider(order);
  } catch (cause) {
    throw new PaymentDeclined(`charge of order ${order.number} failed (${order.total} EUR)`, { cause });
  }
}

/** An error raised through a few frames with a cause; each one different, so dedupe drops none. */
function makeError(/** @type {number} */ number) {
  const order = { number, total: (19.99 * (1 + (number % 3))).toFixed(2) };
  try {
    charge(order);
  } catch (error) {
    return error;
  }
  throw new Error('unreachable');
}

/** @param {import('node:perf_hooks').IntervalHistogram | number[]} values @param {number} fraction */
function percentile(values, fraction) {
  if (!Array.isArray(values)) return values.count ? values.percentile(fraction * 100) / 1000 : 0;
  const ordered = [...values].sort((a, b) => a - b);
  return ordered[Math.min(ordered.length - 1, Math.max(0, Math.round(fraction * ordered.length) - 1))] ?? 0;
}

/** @param {number} x */
function round1(x) {
  return Math.round(x * 10) / 10;
}

/** @param {number[]} values */
function summary(values) {
  const round = round1;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  return {
    p50: round(percentile(values, 0.5)),
    p99: round(percentile(values, 0.99)),
    max: round(Math.max(...values)),
    mean: round(mean),
  };
}

/** Pending envelopes (`*.envelope` files, at any depth) under the spool folder; 0 when there is none. */
function spooledEnvelopes(/** @type {string} */ folder) {
  if (!existsSync(folder)) return 0;
  const entries = readdirSync(folder, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile() && /^[^.].*\.envelope$/.test(entry.name)).length;
}

/** @param {{ [key: string]: any }} options */
export async function child(options) {
  const Sentry = await import(sentryEntry());
  /** @type {Counts} */
  const discards = {};
  // Every loss the client records (queue_overflow, network_error, ...) goes through recordDroppedEvent; the
  // transport gets it bound at construction, so the prototype is patched before init.
  const original = Sentry.NodeClient.prototype.recordDroppedEvent;
  Sentry.NodeClient.prototype.recordDroppedEvent = function (
    /** @type {string} */ reason,
    /** @type {string} */ category,
    count = 1,
  ) {
    discards[`${reason}:${category}`] = (discards[`${reason}:${category}`] ?? 0) + count;
    return original.call(this, reason, category, count);
  };
  /** @type {{ captureException: Function, flush: (ms: number) => Promise<boolean> }} */
  let sdk = Sentry;
  if (options.arm === 'stackwatch') {
    sdk = await import(pathToFileURL(path.join(CLIENT, 'src', 'index.js')).href);
    if (typeof (/** @type {any} */ (sdk).init) !== 'function') throw new Error('clients/js/src/index.js has no init');
    /** @type {any} */ (sdk).init({ dsn: options.dsn, component: 'bench', spoolDir: options['spool-dir'] });
  } else {
    Sentry.init({ dsn: options.dsn });
    Sentry.setTag('component', 'bench'); // the same event as the Stackwatch arm's, which sets this tag
  }
  const replayMs = Number(options['replay-ms']);
  const result = options.phase === 'replay' ? await replay(sdk, replayMs) : await captureAll(Sentry, sdk, options);
  const cpu = process.cpuUsage();
  const line = JSON.stringify({
    ...result,
    discards,
    spool_files: options.arm === 'stackwatch' ? spooledEnvelopes(options['spool-dir']) : null,
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
  });
  process.stdout.write(`${line}\n`, () => process.exit(0)); // no exit-time flush: what is not sent is not sent
}

/**
 * @param {any} Sentry
 * @param {{ captureException: Function, flush: (ms: number) => Promise<boolean> }} sdk
 * @param {{ [key: string]: any }} options
 */
async function captureAll(Sentry, sdk, options) {
  const warmup = Number(options.warmup);
  const total = warmup + Number(options.captures);
  const pace = Number(options['pace-ms']);
  const timed = Number(options.captures);
  const errors = Array.from({ length: total }, (_, number) => makeError(number));
  /** @type {string[]} */
  const eventIds = [];
  /** @type {number[]} */
  const callUs = [];
  /** @type {number[]} */
  const loopUs = [];
  /** @type {number[]} */
  const cpuUs = [];
  const delay = monitorEventLoopDelay({ resolution: 1 });
  /** @type {{ elu: import('node:perf_hooks').EventLoopUtilization, cpu: NodeJS.CpuUsage } | undefined} */
  let opened;
  // The loop's active time is wall time, so a process that the OS preempts looks busier; the process's CPU time
  // over the same interval (all its threads: GC helpers, libuv's file system pool) is not inflated that way.
  const closeInterval = () => {
    const now = { elu: performance.eventLoopUtilization(), cpu: process.cpuUsage() };
    if (opened) {
      loopUs.push(performance.eventLoopUtilization(now.elu, opened.elu).active * 1000);
      const cpu = process.cpuUsage(opened.cpu);
      cpuUs.push(cpu.user + cpu.system);
    }
    return now;
  };
  const started = performance.now();
  for (let number = 0; number < total; number += 1) {
    await sleep(Math.max(0, started + number * pace - performance.now()));
    if (number === warmup) delay.enable();
    const now = closeInterval();
    opened = number >= warmup ? now : undefined;
    Sentry.addBreadcrumb({ category: 'step', message: `price step for order ${number}`, data: { attempt: 1 } });
    const hint = { tags: { workflow_id: 'checkout', run_id: `run_${number}`, step_id: 'price', tenant: 'acme' } };
    const before = process.hrtime.bigint();
    const eventId = sdk.captureException(errors[number], hint);
    const after = process.hrtime.bigint();
    if (number >= warmup) callUs.push(Number(after - before) / 1000);
    eventIds.push(typeof eventId === 'string' ? eventId : Sentry.lastEventId());
  }
  await sleep(Math.max(0, started + total * pace - performance.now()));
  closeInterval();
  delay.disable();
  // What the SDK still had to do after the last capture (sending a backlog) is not in any capture's interval:
  // the flush's active and CPU time are reported beside, per timed capture.
  const flushStart = { at: performance.now(), elu: performance.eventLoopUtilization(), cpu: process.cpuUsage() };
  const flushed = await sdk.flush(Number(options['flush-ms']));
  const flushCpu = process.cpuUsage(flushStart.cpu);
  const flushActiveUs = performance.eventLoopUtilization(flushStart.elu).active * 1000;
  return {
    event_ids: eventIds,
    timed,
    call_us: summary(callUs),
    loop_us: summary(loopUs),
    cpu_us: summary(cpuUs),
    loop_delay_us: {
      p50: Math.round(percentile(delay, 0.5)),
      p99: Math.round(percentile(delay, 0.99)),
      max: Math.round(delay.max / 1000),
    },
    flush: {
      ok: flushed,
      ms: Math.round(performance.now() - flushStart.at),
      active_us_per_capture: round1(flushActiveUs / timed),
      cpu_us_per_capture: round1((flushCpu.user + flushCpu.system) / timed),
    },
  };
}

/**
 * Replays a spool: flush until the harness says stop (a line on stdin) or `replayMs` have passed.
 * @param {{ flush: (ms: number) => Promise<boolean> }} sdk @param {number} replayMs
 */
async function replay(sdk, replayMs) {
  let stop = false;
  process.stdin.on('data', () => (stop = true));
  const started = performance.now();
  // The pause keeps the loop turning (stdin, the transport's own I/O) even if flush resolves at once.
  while (!stop && performance.now() - started < replayMs) await Promise.all([sdk.flush(500), sleep(100)]);
  process.stdin.destroy();
  return { replay_ms: Math.round(performance.now() - started) };
}

/** @param {string[]} argv */
function options(argv) {
  const names = ['arm', 'mode', 'phase', 'dsn', 'spool-dir', 'captures', 'warmup', 'pace-ms', 'flush-ms', 'replay-ms'];
  const { values } = parseArgs({ args: argv, options: Object.fromEntries(names.map((n) => [n, { type: 'string' }])) });
  return values;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  child(options(process.argv.slice(2))).catch((error) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : error}\n`);
    process.exit(1);
  });
}
