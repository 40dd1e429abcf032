#!/usr/bin/env node
/**
 * Event-loop cost of capturing an error in Node.js: plain `@sentry/node` against `@stackwatch/sdk`, with the
 * server up, down, or slow; and what each of them loses.
 *
 *     node bench/js_overhead.mjs                      # 500 captures per child, 3 rounds, ~2 min
 *     node bench/js_overhead.mjs --captures 200 --rounds 1 --json > js.json
 *     node bench/js_overhead.mjs --aa                 # both arms plain @sentry/node: the machine's noise
 *
 * Needs only `cd clients/js && npm ci`: both SDKs are loaded by path from clients/js (see bench/README.md).
 *
 * Each (arm, mode) of each round is a fresh child process; rounds repeat every pair, the arms' order alternating,
 * so that the ratio of the two arms within one run means something on a shared machine. A child captures
 * `--warmup` untimed then `--captures` timed errors, one every `--pace-ms`, then flushes. Per timed capture it
 * records the wall time of the `captureException` call and the event loop's active time over the interval that
 * the capture opens (until the next one is due): the call plus everything it set off on the loop (event
 * processors, serialization, spool writes, sending, answers). `monitorEventLoopDelay` runs over the timed captures.
 * The recording servers count the distinct event_ids received; the child counts every discard the client records
 * (what client reports are made of).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { sentryEntry } from './js_overhead_child.mjs';
import { RecordingServer, closedPort } from './js_recording_server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = path.join(ROOT, 'bench', 'js_overhead_child.mjs');
const CLIENT = path.join(ROOT, 'clients', 'js');
const ARMS = ['sentry', 'stackwatch'];
/** With --aa: both arms plain @sentry/node, to see how far apart two identical arms come out on this machine. */
const AA_ARMS = ['sentry', 'sentry-again'];
const MODES = /** @type {const} */ (['up', 'down', 'slow']);
const BAR_P99_RATIO = 1.3;
const SLOW_ANSWER_MS = 2000;
/** How long a child waits for its flush after the captures, per mode. */
const FLUSH_MS = { up: 10_000, down: 2_000, slow: 10_000 };
/** How long the replay child may take to deliver the spool once the server is reachable and fast. */
const REPLAY_MS = 20_000;
/** ... but stops waiting when nothing more arrived for this long. */
const REPLAY_STALL_MS = 5_000;
const CHILD_TIMEOUT_MS = 60_000;

/** @typedef {(typeof MODES)[number]} Mode */
/** @typedef {{ [key: string]: number }} Counts */

/** Busy CPU seconds of the whole machine (Linux), or null. */
function machineBusySeconds() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / 100;
  } catch {
    return null;
  }
}

/**
 * Runs one child to its end; `whileRunning` (if given) decides when to tell it to stop.
 * @param {string[]} args
 * @param {(child: import('node:child_process').ChildProcess) => Promise<void>} [whileRunning]
 */
async function runChild(args, whileRunning) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SENTRY_|STACKWATCH_)/.test(k)));
  const started = performance.now();
  const busyBefore = machineBusySeconds();
  const ownBefore = process.cpuUsage();
  const proc = spawn(process.execPath, [CHILD, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (chunk) => (stdout += chunk));
  proc.stderr.on('data', (chunk) => (stderr += chunk));
  const killer = setTimeout(() => proc.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  const exited = once(proc, 'close');
  if (whileRunning) await Promise.race([whileRunning(proc), exited]);
  const [code] = await exited;
  clearTimeout(killer);
  const lines = stdout.trim().split('\n');
  if (code !== 0 || !lines.at(-1)) throw new Error(`child ${args.join(' ')} failed (${code}):\n${stderr.slice(-4000)}`);
  const result = JSON.parse(/** @type {string} */ (lines.at(-1)));
  const wall = (performance.now() - started) / 1000;
  const busyAfter = machineBusySeconds();
  if (busyBefore !== null && busyAfter !== null) {
    const own = process.cpuUsage(ownBefore);
    const ours = result.cpu_ms / 1000 + (own.user + own.system) / 1e6;
    result.other_processes_cores = Math.round((Math.max(0, busyAfter - busyBefore - ours) / wall) * 100) / 100;
  }
  result.wall_s = Math.round(wall * 10) / 10;
  return result;
}

/**
 * One (arm, mode) of one round: its server, its child, for the Stackwatch arm the replay of its spool.
 * @param {string} arm @param {Mode} mode @param {number} project the run's project id in its DSN
 * @param {string} workdir @param {{ [key: string]: any }} config
 */
async function runPair(arm, mode, project, workdir, config) {
  const spoolDir = path.join(workdir, `spool-${project}`);
  let server = mode === 'down' ? undefined : new RecordingServer(mode === 'slow' ? SLOW_ANSWER_MS : 0);
  const port = server ? await server.listen() : await closedPort();
  const dsn = `http://benchkey@127.0.0.1:${port}/${project}`;
  const common = ['--arm', arm, '--mode', mode, '--dsn', dsn, '--spool-dir', spoolDir, '--replay-ms', `${REPLAY_MS}`];
  try {
    const capture = ['--phase', 'capture', '--flush-ms', `${FLUSH_MS[mode]}`, ...config.childArgs];
    const run = await runChild([...common, ...capture]);
    const captured = new Set(run.event_ids);
    const receivedNow = () => [...captured].filter((id) => server?.project(String(project)).ids.has(id)).length;
    run.received_before_replay = receivedNow();
    run.spool_files_before_replay = run.spool_files;
    if (arm === 'stackwatch' && mode !== 'up') {
      // Recovery: the server comes back (down: on the same port; slow: answering at once) and a new process
      // opens the same spool. Plain @sentry/node keeps nothing, so it has no such phase.
      if (!server) await (server = new RecordingServer(0)).listen(port);
      server.delayMs = 0;
      const replay = await runChild([...common, '--phase', 'replay'], async (proc) => {
        await untilDelivered(receivedNow, captured.size);
        proc.stdin?.end('stop\n');
      });
      run.replay = { ms: replay.replay_ms, spool_files_after: replay.spool_files, discards: replay.discards };
    }
    const stats = server?.project(String(project));
    run.captured = captured.size;
    run.received = receivedNow();
    run.duplicates = stats ? [...stats.ids.values()].reduce((a, b) => a + b, 0) - stats.ids.size : 0;
    run.lost = run.captured - run.received;
    run.client_reports_received = stats?.clientReports ?? {};
    delete run.event_ids;
    return { arm, mode, ...run };
  } finally {
    await server?.close();
  }
}

/**
 * Waits until `count()` reaches `target`, or it has not grown for REPLAY_STALL_MS, or REPLAY_MS have passed.
 * @param {() => number} count @param {number} target
 */
async function untilDelivered(count, target) {
  const started = performance.now();
  let last = count();
  let grew = started;
  while (last < target && performance.now() - started < REPLAY_MS && performance.now() - grew < REPLAY_STALL_MS) {
    await sleep(100);
    if (count() > last) [last, grew] = [count(), performance.now()];
  }
}

/** @param {number[]} values */
function median(values) {
  const ordered = [...values].sort((a, b) => a - b);
  const middle = Math.floor(ordered.length / 2);
  return ordered.length % 2 ? ordered[middle] : (ordered[middle - 1] + ordered[middle]) / 2;
}

/** @param {any[]} runs @param {string[]} arms */
function aggregate(runs, arms) {
  const rows = [];
  for (const mode of MODES) {
    for (const arm of arms) {
      const mine = runs.filter((run) => run.arm === arm && run.mode === mode);
      const pick = (/** @type {(run: any) => number} */ get) => median(mine.map(get));
      const range = (/** @type {(run: any) => number} */ get) => [
        Math.min(...mine.map(get)),
        Math.max(...mine.map(get)),
      ];
      const sum = (/** @type {(run: any) => number} */ get) => mine.reduce((total, run) => total + get(run), 0);
      /** @type {Counts} */
      const discards = {};
      const add = (/** @type {string} */ key, /** @type {number} */ n) => (discards[key] = (discards[key] ?? 0) + n);
      for (const run of mine) {
        for (const [key, n] of Object.entries(run.discards)) add(key, n);
        for (const [key, n] of Object.entries({ ...run.replay?.discards })) add(`replay ${key}`, n);
      }
      rows.push({
        arm,
        mode,
        rounds: mine.length,
        p50_us: pick((run) => run.loop_us.p50),
        p99_us: pick((run) => run.loop_us.p99),
        p99_us_range: range((run) => run.loop_us.p99),
        call_p99_us: pick((run) => run.call_us.p99),
        cpu_p50_us: pick((run) => run.cpu_us.p50),
        cpu_p99_us: pick((run) => run.cpu_us.p99),
        after_us: pick((run) => run.flush.active_us_per_capture),
        all_in_mean_us: pick((run) => Math.round(run.loop_us.mean + run.flush.active_us_per_capture)),
        loop_delay_p99_us: pick((run) => run.loop_delay_us.p99),
        captured: sum((run) => run.captured),
        received: sum((run) => run.received),
        lost: sum((run) => run.lost),
        duplicates: sum((run) => run.duplicates),
        discards,
        other_processes_cores_max: Math.max(...mine.map((run) => run.other_processes_cores ?? 0)),
      });
    }
  }
  return rows;
}

/** @param {number} a @param {number} b */
function ratio(a, b) {
  return Math.round((a / b) * 100) / 100;
}

/** @param {any[]} rows @param {string[]} arms */
function verdict(rows, arms) {
  /** @type {{ [mode: string]: { [key: string]: number | boolean } }} */
  const modes = {};
  for (const mode of MODES) {
    const [plain, ours] = arms.map((arm) => rows.find((row) => row.arm === arm && row.mode === mode));
    const p99 = ratio(ours.p99_us, plain.p99_us);
    modes[mode] = {
      p50: ratio(ours.p50_us, plain.p50_us),
      p99,
      cpu_p50: ratio(ours.cpu_p50_us, plain.cpu_p50_us),
      cpu_p99: ratio(ours.cpu_p99_us, plain.cpu_p99_us),
      all_in_mean: ratio(ours.all_in_mean_us, plain.all_in_mean_us),
      lost: ours.lost,
      pass: p99 <= BAR_P99_RATIO && ours.lost === 0,
    };
  }
  const bar = `${arms[1]} p99 <= ${BAR_P99_RATIO} x ${arms[0]} and ${arms[1]} lost = 0, every mode`;
  return { bar, modes, pass: Object.values(modes).every((m) => m.pass) };
}

/** @param {any} report */
function table(report) {
  const lines = [
    '| arm | mode | p50 µs | p99 µs [range] | call p99 µs | cpu p50 / p99 µs | loop delay p99 µs | ' +
      'after the loop µs | received/captured | lost | client discards |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of report.rows) {
    const discards = Object.entries(row.discards).map(([key, n]) => `${key} ${n}`).join(', ') || '0';
    lines.push(
      `| ${row.arm} | ${row.mode} | ${row.p50_us} | ${row.p99_us} [${row.p99_us_range.join('–')}] | ` +
        `${row.call_p99_us} | ${row.cpu_p50_us} / ${row.cpu_p99_us} | ${row.loop_delay_p99_us} | ${row.after_us} | ` +
        `${row.received}/${row.captured} | ${row.lost} | ` +
        `${discards} |`,
    );
  }
  lines.push('', `${report.config.arms[1]} / ${report.config.arms[0]} (median of rounds):`);
  for (const [mode, m] of Object.entries(report.verdict.modes)) {
    const cpu = `(cpu p50 ${m.cpu_p50}x, p99 ${m.cpu_p99}x; all-in mean ${m.all_in_mean}x)`;
    lines.push(`  ${mode.padEnd(5)} p50 ${m.p50}x  p99 ${m.p99}x  ${cpu}  lost ${m.lost}  ${m.pass ? 'PASS' : 'FAIL'}`);
  }
  const busy = Math.max(...report.rows.map((/** @type {any} */ row) => row.other_processes_cores_max));
  lines.push(`other processes used up to ${busy} cores during a child's run (above ~0.1 the ratios are noisy)`);
  lines.push(`${report.verdict.pass ? 'PASS' : 'FAIL'}: ${report.verdict.bar} (informational)`);
  return lines.join('\n');
}

/** @param {{ [key: string]: any }} config */
async function harness(config) {
  sentryEntry(); // fail early when clients/js has not been installed
  const workdir = mkdtempSync(path.join(os.tmpdir(), 'stackwatch-js-bench-'));
  const started = performance.now();
  const runs = [];
  let project = 0;
  try {
    for (let round = 1; round <= config.rounds; round += 1) {
      for (const mode of MODES) {
        for (const arm of round % 2 ? config.arms : [...config.arms].reverse()) {
          const run = await runPair(arm, mode, (project += 1), workdir, config);
          runs.push({ round, ...run });
          process.stderr.write(
            `  round ${round} ${mode.padEnd(4)} ${arm.padEnd(12)} ` +
              `loop p50/p99 ${run.loop_us.p50}/${run.loop_us.p99} µs, ` +
              `received ${run.received}/${run.captured} (${run.wall_s} s, other cores ${run.other_processes_cores})\n`,
          );
        }
      }
    }
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
  const rows = aggregate(runs, config.arms);
  const manifest = JSON.parse(readFileSync(path.join(CLIENT, 'node_modules/@sentry/node/package.json'), 'utf8'));
  return {
    benchmark: 'stackwatch-js-sdk-overhead',
    when: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      node: process.version,
      sentry_node: manifest.version,
      platform: `${os.platform()} ${os.release()}`,
    },
    config: {
      captures: config.captures,
      warmup: config.warmup,
      pace_ms: config.paceMs,
      rounds: config.rounds,
      slow_answer_ms: SLOW_ANSWER_MS,
      flush_ms: FLUSH_MS,
      arms: config.arms,
    },
    wall_s: Math.round((performance.now() - started) / 100) / 10,
    rows,
    verdict: verdict(rows, config.arms),
    runs,
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      captures: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '20' },
      'pace-ms': { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      aa: { type: 'boolean', default: false },
    },
  });
  const captures = Number(values.captures);
  const rounds = Number(values.rounds);
  const warmup = Number(values.warmup);
  const paceMs = Number(values['pace-ms']);
  const within = (/** @type {number} */ x, /** @type {number} */ low, /** @type {number} */ high) =>
    x >= low && x <= high;
  if (!(within(captures, 1, 20_000) && within(rounds, 1, 20) && within(warmup, 0, 1000) && within(paceMs, 0.1, 100))) {
    throw new Error('--captures must be 1-20000, --rounds 1-20, --warmup 0-1000, --pace-ms 0.1-100');
  }
  const childArgs = ['--captures', String(captures), '--warmup', String(warmup), '--pace-ms', String(paceMs)];
  const arms = values.aa ? AA_ARMS : ARMS;
  const report = await harness({ captures, rounds, warmup, paceMs, childArgs, arms });
  if (values.json) {
    process.stderr.write(`${table(report)}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    process.stdout.write(`${table(report)}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`js_overhead: ${error instanceof Error ? error.message : error}\n`);
  process.exit(2);
});
