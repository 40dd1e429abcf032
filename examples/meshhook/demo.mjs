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
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { WEB, buildWeb, ensureInstalled } from './scripts/prepare.mjs';
import { startWeb } from './scripts/web.mjs';
import { isMain } from './workers/lib/is-main.js';
import { runWorkersDemo } from './workers/demo.mjs';

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
    if (!existsSync(join(WEB, 'build', 'index.js'))) {
      throw new Error('the example is not built (node scripts/prepare.mjs --build)');
    }
  } else {
    await ensureInstalled({ log });
    await buildWeb({ log });
  }

  /** @type {NodeJS.ProcessEnv} */
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
