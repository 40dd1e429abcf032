// The MeshHook example (examples/meshhook) on @stackwatch/sdk, against a local recorder of what it sends: the
// SvelteKit API built with Vite and started as `node build/index.js`, and the workers' demo (orchestrator and HTTP
// executor as separate processes). The events carry their component and workflow context; no secret of a request
// (cookie, Authorization, query token, webhook body, signature) reaches the wire or the spool; nothing is reported
// twice, and an error's cause chain is kept.
//
// Needs npm (the example is installed from its committed lock, once per lock). Skipped without it, unless
// STACKWATCH_TEST_REQUIRE names "node": then nothing may be skipped.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { EXAMPLE, buildWeb, ensureInstalled } from '../../../examples/meshhook/scripts/prepare.mjs';
import { startWeb } from '../../../examples/meshhook/scripts/web.mjs';
import { startRecorder } from './support/recorder.js';

const REQUIRED = (process.env.STACKWATCH_TEST_REQUIRE ?? '').split(/[\s,]+/).includes('node');
const INSTALL_TIMEOUT_MS = 300_000;
const BUILD_TIMEOUT_MS = 300_000;
const DEMO_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 180_000;
const WORKFLOW_TAGS = ['workflow_id', 'run_id', 'step_id', 'attempt', 'tenant'];

/** Why the example cannot run here, or null. */
async function prepare() {
  if (spawnSync('npm', ['--version'], { stdio: 'ignore' }).status !== 0) return 'npm is not on PATH';
  try {
    await ensureInstalled({ timeoutMs: INSTALL_TIMEOUT_MS });
  } catch (err) {
    return `npm ci in ${EXAMPLE} failed: ${/** @type {Error} */ (err).message}`;
  }
  await buildWeb({ force: true, timeoutMs: BUILD_TIMEOUT_MS }); // a build failure is a failure, never a skip
  return null;
}

const unavailable = await prepare();
if (unavailable && REQUIRED) throw new Error(`${unavailable} (required by STACKWATCH_TEST_REQUIRE)`);
const skip = unavailable ?? false;

/** @type {string} */
let spoolRoot;
before(() => {
  spoolRoot = mkdtempSync(join(tmpdir(), 'stackwatch-example-'));
});
after(() => rmSync(spoolRoot, { recursive: true, force: true }));

/** A clean environment for a component: no DSN but the recorder's, the given spool folder. */
function componentEnv(/** @type {string} */ dsn, /** @type {string} */ spoolDir) {
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, STACKWATCH_DSN: dsn, STACKWATCH_SPOOL_DIR: spoolDir };
  delete env.SENTRY_DSN;
  return env;
}

/** Every file's bytes under `dir` (the spool), as one buffer. */
function filesUnder(/** @type {string} */ dir) {
  /** @type {Buffer[]} */
  const parts = [];
  /** @param {string} at */
  const walk = (at) => {
    let names;
    try {
      names = readdirSync(at);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else parts.push(readFileSync(path));
    }
  };
  walk(dir);
  return Buffer.concat(parts);
}

/** The exception types of an event, innermost cause first (Sentry's order). */
function chain(/** @type {any} */ event) {
  return (event.exception?.values ?? []).map((/** @type {any} */ v) => v.type);
}

const API_TEST = 'the SvelteKit API reports with component and route, and sends no secret of the request';
test(API_TEST, { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  const recorder = await startRecorder();
  const spoolDir = join(spoolRoot, 'api');
  const secret = () => randomBytes(16).toString('hex');
  const secrets = { token: secret(), cookie: secret(), authorization: secret(), body: secret(), signature: secret() };
  const web = await startWeb(componentEnv(recorder.dsn(), spoolDir));
  /** @type {{ code: number | null, signal: NodeJS.Signals | null }} */
  let stopped;
  try {
    const api = await fetch(`${web.url}/api/workflows/boom?token=${secrets.token}&view=full`, {
      headers: {
        cookie: `sb-access-token=${secrets.cookie}; theme=dark`,
        authorization: `Bearer ${secrets.authorization}`,
      },
    });
    assert.equal(api.status, 500);
    assert.doesNotMatch(await api.text(), /statement timeout/, 'the error details stay on the server');
    const hook = await fetch(`${web.url}/webhooks/wf_lead_sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${secrets.signature}` },
      body: JSON.stringify({ action: 'created', note: secrets.body }),
    });
    assert.equal(hook.status, 500);
    await hook.arrayBuffer();
    const ok = await fetch(`${web.url}/api/workflows/wf_lead_sync`, { headers: { authorization: 'Bearer x' } });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    await recorder.waitFor(() => recorder.events.length >= 2, 'the two events', 30_000);
  } finally {
    stopped = await web.stop(); // SIGTERM: whatever is still buffered is flushed now
  }
  try {
    assert.ok(stopped.code === 0 || stopped.signal === 'SIGTERM', `the API stopped with ${JSON.stringify(stopped)}`);
    const events = recorder.events;
    assert.equal(events.length, 2, `one event per failed request: ${JSON.stringify(events.map(chain))}`);
    for (const event of events) assert.equal(event.tags?.component, 'api');
    const routeOf = (/** @type {any} */ e) => e.tags?.route ?? e.transaction;
    const [boom] = events.filter((e) => /statement timeout/.test(e.exception?.values?.at(-1)?.value));
    assert.ok(boom, 'the /api/workflows/boom error arrived');
    assert.ok(
      boom.tags?.route === '/api/workflows/[id]' || String(boom.transaction).includes('/api/workflows/[id]'),
      `route of the API error: ${routeOf(boom)}`,
    );
    const [webhook] = events.filter((e) => chain(e).includes('TypeError'));
    assert.ok(webhook, 'the webhook error arrived');
    assert.ok(String(routeOf(webhook)).includes('/webhooks/[id]'), `route of the webhook error: ${routeOf(webhook)}`);

    const sent = recorder.bytes();
    const spooled = filesUnder(spoolDir);
    assert.ok(sent.includes('canceling statement due to statement timeout'), 'the recorder got the event itself');
    for (const [name, value] of Object.entries(secrets)) {
      assert.ok(!sent.includes(value), `the ${name} secret was sent`);
      assert.ok(!spooled.includes(value), `the ${name} secret was written to the spool`);
    }
  } finally {
    await recorder.close();
  }
});

const WORKERS_TEST = 'the workers report each failed run once, with its workflow context and cause chain';
test(WORKERS_TEST, { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  const recorder = await startRecorder();
  const demo = spawn(process.execPath, [join(EXAMPLE, 'workers', 'demo.mjs'), '--runs', '15', '--duration', '60'], {
    env: componentEnv(recorder.dsn(), join(spoolRoot, 'workers')),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  /** @type {Buffer[]} */
  const out = [];
  demo.stdout.on('data', (chunk) => out.push(chunk));
  const timer = setTimeout(() => demo.kill('SIGKILL'), DEMO_TIMEOUT_MS);
  const [code] = await once(demo, 'exit');
  clearTimeout(timer);
  try {
    const output = Buffer.concat(out).toString('utf8');
    assert.equal(code, 0, output);
    const summary = JSON.parse(output.trim().split('\n').at(-1) ?? '');
    assert.equal(summary.finished, true, 'every run ended within the time');
    assert.deepEqual(summary.exits, { orchestrator: 0, 'http-exec': 0 });
    // 15 runs over the five workflows: 4 complete, 11 fail (see examples/meshhook/README.md)
    assert.deepEqual([summary.completed, summary.failed], [4, 11]);

    const events = recorder.events;
    assert.equal(events.length, summary.failed, `one event per failed run: ${JSON.stringify(events.map(chain))}`);
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, 'an event was sent twice');
    assert.equal(new Set(events.map((e) => e.tags?.run_id)).size, events.length, 'a run was reported twice');
    for (const event of events) {
      assert.ok(['orchestrator', 'http-exec'].includes(event.tags?.component), `component ${event.tags?.component}`);
      for (const tag of WORKFLOW_TAGS) assert.ok(event.tags?.[tag], `${tag} missing: ${JSON.stringify(event.tags)}`);
      assert.equal(event.contexts?.workflow?.run_id, event.tags.run_id);
    }
    const of = (/** @type {string} */ component) => events.filter((e) => e.tags.component === component);
    assert.equal(of('orchestrator').length, 6);
    assert.equal(of('http-exec').length, 5);

    const exhausted = of('http-exec').filter((e) => e.tags.step_id === 'fetchOrder');
    assert.equal(exhausted.length, 1);
    assert.deepEqual(chain(exhausted[0]), ['HttpStatusError', 'StepFailedError'], 'the 500 is kept as the cause');
    assert.equal(exhausted[0].tags.attempt, '3');
    assert.match(exhausted[0].exception.values[0].value, /answered 500/);
    const timedOut = of('http-exec').filter((e) => e.tags.step_id === 'notifyCarrier');
    assert.equal(timedOut.length, 2, 'two runs time out the same way: both are reported');
    for (const event of timedOut) assert.deepEqual(chain(event), ['TimeoutError', 'StepFailedError']);
    const transform = of('http-exec').filter((e) => e.tags.step_type === 'transform');
    assert.deepEqual(transform.map(chain), [['TypeError']]);
    assert.equal(transform[0].tags.attempt, '1');
    const unreadable = of('orchestrator').filter((e) => e.tags.workflow_id === 'wf_legacy_import');
    assert.equal(unreadable.length, 3);
    for (const event of unreadable) assert.deepEqual(chain(event), ['SyntaxError', 'DefinitionError']);
  } finally {
    await recorder.close();
  }
});
