import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Stackwatch from '../src/index.js';

const CHILD = new URL('./support/signal-child.js', import.meta.url).pathname;

/**
 * @param {string} output
 * @param {string} extra
 * @returns {Promise<{ code: number | null, signal: string | null }>}
 */
function runAndTerminate(output, extra) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, output, extra], { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.stdout.on('data', (chunk) => {
      if (String(chunk).includes('ready')) child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

test('SIGTERM flushes what was captured, then ends the process by the signal', async () => {
  const output = join(mkdtempSync(join(tmpdir(), 'sw-signal-')), 'sent');
  const { code, signal } = await runAndTerminate(output, 'no');
  assert.equal(signal, 'SIGTERM', `ended by the signal (code ${code})`);
  assert.equal(readFileSync(output, 'utf8').trim().split('\n').length, 3);
});

test('with the application\'s own SIGTERM listener, that listener decides how the process ends', async () => {
  const output = join(mkdtempSync(join(tmpdir(), 'sw-signal-')), 'sent');
  const { code } = await runAndTerminate(output, 'yes');
  assert.equal(code, 7);
  assert.ok(existsSync(output), 'the flush ran beside it');
});

test('init needs a component, takes the DSN from STACKWATCH_DSN then SENTRY_DSN', () => {
  assert.throws(() => Stackwatch.init(/** @type {any} */ ({})), /component/);
  process.env.SENTRY_DSN = 'http://sentry@127.0.0.1:9/2';
  process.env.STACKWATCH_DSN = 'http://stackwatch@127.0.0.1:9/3';
  try {
    const client = Stackwatch.init({ component: 'x', flushOnSignals: false });
    assert.equal(client?.getDsn()?.publicKey, 'stackwatch');
    delete process.env.STACKWATCH_DSN;
    assert.equal(Stackwatch.init({ component: 'x', flushOnSignals: false })?.getDsn()?.publicKey, 'sentry');
    assert.equal(Stackwatch.init({ component: 'x', dsn: 'http://own@127.0.0.1:9/4', flushOnSignals: false })?.getDsn()?.publicKey, 'own');
  } finally {
    delete process.env.SENTRY_DSN;
    delete process.env.STACKWATCH_DSN;
  }
  assert.equal(process.listenerCount('SIGTERM'), 0, 'flushOnSignals: false installs no handler');
});
