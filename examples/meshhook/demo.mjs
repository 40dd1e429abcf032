// The whole MeshHook example against one DSN: the SvelteKit API (component api) answering a few requests that
// fail, then the orchestrator and the HTTP executor (components orchestrator and http-exec) running workflow runs.
// What `stackwatch demo` runs when Node.js is there.
//
//   node demo.mjs [--dsn DSN] [--runs N] [--duration SECONDS] [--spool-dir DIR] [--seed S] [--no-install]
//
// Installs and builds the example first if needed (scripts/prepare.mjs; --no-install only checks that it is).
// The requests carry secrets in a cookie, an Authorization header, a query string, a webhook body and its
// signature, derived from --seed (the first 32 hex digits of sha256("stackwatch-demo:<seed>:<name>")): none of
// them may reach Stackwatch. Prints a summary as its last line (JSON); exit 0 when every part ended cleanly.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { WEB, buildWeb, ensureInstalled } from './scripts/prepare.mjs';
import { isMain } from './workers/lib/is-main.js';
import { runWorkersDemo } from './workers/demo.mjs';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const SECRET_NAMES = ['query_token', 'cookie', 'authorization', 'webhook_body', 'signature'];

/**
 * The secrets the demo's requests carry, by name.
 * @param {number} seed
 * @returns {Record<string, string>}
 */
export function plantedSecrets(seed) {
  return Object.fromEntries(
    SECRET_NAMES.map((name) => [
      name,
      createHash('sha256').update(`stackwatch-demo:${seed}:${name}`).digest('hex').slice(0, 32),
    ]),
  );
}

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Start the built API (apps/web/build) on a free port of 127.0.0.1; resolves once it answers.
 * @param {NodeJS.ProcessEnv} env
 */
export async function startWeb(env) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(WEB, 'build', 'index.js')], {
    cwd: WEB,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the API exited with ${child.exitCode} before answering`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2_000) })).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the API did not answer on ${url} within ${START_TIMEOUT_MS / 1000} s`);
    }
    await sleep(100);
  }
  return {
    url,
    /** Stop it as a service manager does (SIGTERM: it flushes its events), SIGKILL if it takes too long. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/**
 * The requests a busy MeshHook API gets, some of which fail; returns each one's status.
 * @param {string} url
 * @param {Record<string, string>} secrets
 */
export async function driveApi(url, secrets) {
  const signedIn = { cookie: `sb-access-token=${secrets.cookie}`, authorization: `Bearer ${secrets.authorization}` };
  const json = { 'content-type': 'application/json' };
  /** @type {[string, string, RequestInit][]} */
  const requests = [
    ['page', '/', {}],
    ['workflow', '/api/workflows/wf_lead_sync', { headers: signedIn }],
    ['missing workflow', '/api/workflows/wf_nope', { headers: signedIn }],
    ['database timeout', `/api/workflows/boom?token=${secrets.query_token}`, { headers: signedIn }],
    ['broken definition', '/api/workflows/wf_legacy_import', { headers: signedIn }],
    [
      'webhook without event',
      '/webhooks/wf_lead_sync',
      {
        method: 'POST',
        headers: { ...json, 'x-hub-signature-256': `sha256=${secrets.signature}` },
        body: JSON.stringify({ action: 'created', note: secrets.webhook_body }),
      },
    ],
    ['webhook not JSON', '/webhooks/wf_order_sync', { method: 'POST', headers: json, body: 'order=4001&total=12' }],
    [
      'webhook bad signature',
      '/webhooks/wf_signed',
      { method: 'POST', headers: { ...json, 'x-hub-signature-256': 'sha256=00' }, body: '{}' },
    ],
  ];
  /** @type {Record<string, number>} */
  const statuses = {};
  for (const [name, path, init] of requests) {
    const response = await fetch(url + path, { ...init, signal: AbortSignal.timeout(10_000) });
    await response.arrayBuffer();
    statuses[name] = response.status;
  }
  return statuses;
}

async function main() {
  const { values } = parseArgs({
    options: {
      dsn: { type: 'string' },
      runs: { type: 'string', default: '15' },
      duration: { type: 'string', default: '60' },
      'spool-dir': { type: 'string' },
      seed: { type: 'string', default: '1' },
      'no-install': { type: 'boolean' },
    },
  });
  const runs = Number(values.runs);
  const durationS = Number(values.duration);
  const seed = Number(values.seed);
  if (!Number.isInteger(runs) || runs < 1 || !(durationS > 0) || !Number.isInteger(seed)) {
    console.error('usage: node demo.mjs [--dsn DSN] [--runs N>=1] [--duration S>0] [--spool-dir DIR] [--seed N]');
    process.exit(2);
  }
  const dsn = values.dsn ?? process.env.STACKWATCH_DSN;
  if (!dsn) {
    console.error('demo: no DSN: pass --dsn or set STACKWATCH_DSN');
    process.exit(2);
  }
  const log = (/** @type {string} */ line) => console.error(`demo: ${line}`);
  if (values['no-install']) {
    if (!existsSync(join(WEB, 'build', 'index.js'))) throw new Error('the example is not built (node scripts/prepare.mjs --build)');
  } else {
    await ensureInstalled({ log });
    await buildWeb({ log });
  }

  const env = { ...process.env, STACKWATCH_DSN: dsn };
  delete env.SENTRY_DSN;
  if (values['spool-dir']) env.STACKWATCH_SPOOL_DIR = values['spool-dir'];
  const web = await startWeb(env);
  let api;
  try {
    api = await driveApi(web.url, plantedSecrets(seed));
  } finally {
    const stopped = await web.stop();
    api = { ...api, exit: stopped.code ?? stopped.signal };
  }
  log(`api: ${JSON.stringify(api)}`);
  const workers = await runWorkersDemo({ dsn, runs, durationS, spoolDir: values['spool-dir'] });
  const ok = (api.exit === 0 || api.exit === 'SIGTERM') && Object.values(workers.exits).every((code) => code === 0);
  console.log(JSON.stringify({ api, workers }));
  process.exitCode = ok ? 0 : 1;
}

if (isMain(import.meta.url)) await main();
