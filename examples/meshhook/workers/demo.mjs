// The workers' demo: starts the local HTTP target, forks the orchestrator and the HTTP executor (each its own
// process, component and Stackwatch client), starts N workflow runs, waits until every job has ended or the time is
// up, then stops the workers (each flushes what it buffered) and prints a summary as its last line (JSON).
//
//   node workers/demo.mjs [--dsn DSN] [--runs N] [--duration SECONDS] [--spool-dir DIR]
//
// The DSN is --dsn or STACKWATCH_DSN; the spool folder --spool-dir or STACKWATCH_SPOOL_DIR. Exit 0 when both
// workers stopped cleanly.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { Broker } from './lib/broker.js';
import { isMain } from './lib/is-main.js';
import { startTarget } from './lib/target.js';
import { WORKFLOW_IDS, triggerPayload, workflowInfo } from './lib/workflows.js';

const STOP_TIMEOUT_MS = 15_000;

/**
 * The `i`-th run of the demo: the workflows take turns, and each one's `k`-th run gets the `k`-th payload.
 * @param {number} i
 */
export function demoRun(i) {
  const workflowId = WORKFLOW_IDS[i % WORKFLOW_IDS.length];
  const k = Math.floor(i / WORKFLOW_IDS.length);
  return { run_id: randomUUID(), ...workflowInfo(workflowId), after: 'webhook', input: triggerPayload(workflowId, k) };
}

/**
 * @param {{ dsn?: string, runs?: number, durationS?: number, spoolDir?: string }} options
 */
export async function runWorkersDemo({ dsn, runs = 15, durationS = 60, spoolDir } = {}) {
  const target = await startTarget();
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, MESHHOOK_TARGET_URL: target.url };
  if (dsn) env.STACKWATCH_DSN = dsn;
  if (spoolDir) env.STACKWATCH_SPOOL_DIR = spoolDir;
  const broker = new Broker();
  /** @type {Record<string, number | null>} */
  const exits = {};
  const summary = { runs, completed: 0, failed: 0, finished: false, exits };
  broker.on('run:completed', () => (summary.completed += 1));
  broker.on('run:failed', () => (summary.failed += 1));
  broker.start('orchestrator', new URL('./orchestrator.mjs', import.meta.url), env);
  broker.start('http-exec', new URL('./http-exec.mjs', import.meta.url), env);
  try {
    for (let i = 0; i < runs; i++) broker.publish('run:orchestrate', demoRun(i));
    summary.finished = await broker.idle(durationS * 1000);
  } finally {
    summary.exits = await broker.stop(STOP_TIMEOUT_MS);
    await target.close();
  }
  return summary;
}

async function main() {
  const { values } = parseArgs({
    options: {
      dsn: { type: 'string' },
      runs: { type: 'string', default: '15' },
      duration: { type: 'string', default: '60' },
      'spool-dir': { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  const durationS = Number(values.duration);
  if (!Number.isInteger(runs) || runs < 1 || !(durationS > 0)) {
    console.error('usage: node workers/demo.mjs [--dsn DSN] [--runs N>=1] [--duration SECONDS>0] [--spool-dir DIR]');
    process.exit(2);
  }
  const dsn = values.dsn ?? process.env.STACKWATCH_DSN;
  if (!dsn) console.error('workers demo: no DSN (--dsn or STACKWATCH_DSN): the workers run but send nothing');
  const summary = await runWorkersDemo({ dsn, runs, durationS, spoolDir: values['spool-dir'] });
  console.log(JSON.stringify(summary));
  process.exitCode = Object.values(summary.exits).every((code) => code === 0) ? 0 : 1;
}

if (isMain(import.meta.url)) await main();
