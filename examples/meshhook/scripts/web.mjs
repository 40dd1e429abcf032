// Starting the built API (apps/web/build) as `node build/index.js` on a free port of 127.0.0.1, as the demo and
// the tests do, and stopping it as a service manager does.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { WEB } from './prepare.mjs';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

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
