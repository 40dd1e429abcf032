// Installing and building the example, each bounded in time, skipped when already done for the same inputs, and
// safe when two processes (a test run and `stackwatch demo`, say) ask at once.
//
//   node scripts/prepare.mjs [--build] [--force-build]
//
// Installing runs `npm ci` here (the lock is committed) when node_modules was not installed from these manifests,
// and in clients/js when its dependencies are missing: @stackwatch/sdk is linked from there, so its own import of
// @sentry/node is resolved from clients/js/node_modules. Building runs Vite in apps/web when its sources changed.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
export const WEB = join(EXAMPLE, 'apps', 'web');
const CLIENT = join(EXAMPLE, '..', '..', 'clients', 'js');
const INSTALL_STAMP = join(EXAMPLE, 'node_modules', '.stackwatch-installed');
const BUILD_STAMP = join(WEB, 'build', '.stackwatch-build');
const LOCK = join(EXAMPLE, '.prepare.lock');
const MANIFESTS = ['package.json', 'package-lock.json', join('apps', 'web', 'package.json')];
const WEB_SOURCES = ['src', 'static', 'svelte.config.js', 'vite.config.js', 'package.json'];

/** @typedef {{ timeoutMs?: number, log?: (line: string) => void }} StepOptions */

/**
 * Run `command` in `cwd`; rejects with its output when it fails or outlives `timeoutMs` (then its whole process
 * group is killed).
 * @param {string} command
 * @param {string[]} args
 * @param {string} cwd
 * @param {number} timeoutMs
 */
export function run(command, args, cwd, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    /** @type {Buffer[]} */
    const output = [];
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = Buffer.concat(output).toString('utf8');
      const what = `${command} ${args.join(' ')} in ${cwd}`;
      if (late) reject(new Error(`${what} took more than ${timeoutMs / 1000} s:\n${text.slice(-2000)}`));
      else if (code !== 0) reject(new Error(`${what} exited with ${code}:\n${text.slice(-2000)}`));
      else resolve(text);
    });
  });
}

/**
 * A digest of the files at `paths` (folders recursively) under `root`.
 * @param {string} root
 * @param {string[]} paths
 */
function digest(root, paths) {
  const hash = createHash('sha256');
  /** @param {string} relative */
  const add = (relative) => {
    const full = join(root, relative);
    if (!existsSync(full)) return;
    if (statSync(full).isDirectory()) {
      for (const name of readdirSync(full).sort()) add(join(relative, name));
    } else {
      hash.update(`${relative}\0`).update(readFileSync(full)).update('\0');
    }
  };
  for (const path of paths) add(path);
  return hash.digest('hex');
}

/** @param {string} path */
function readStamp(path) {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * Run `fn` holding the example's lock (a directory: atomic to make, and it works without native modules). A lock
 * older than `staleMs` is from a process that died holding it.
 * @template T
 * @param {() => Promise<T>} fn
 * @param {number} staleMs
 * @returns {Promise<T>}
 */
async function locked(fn, staleMs) {
  const deadline = Date.now() + staleMs + 10_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'EEXIST') throw err;
      let age = 0;
      try {
        age = Date.now() - statSync(LOCK).mtimeMs;
      } catch {
        continue; // just released
      }
      if (age > staleMs) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${LOCK} is held by another process`);
      else await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/**
 * `npm ci` here (and in clients/js when its dependencies are missing), unless done for the same manifests.
 * @param {StepOptions} [options]
 */
export async function ensureInstalled({ timeoutMs = 300_000, log = () => {} } = {}) {
  await locked(async () => {
    if (!existsSync(join(CLIENT, 'node_modules', '@sentry', 'node', 'package.json'))) {
      log(`installing the dependencies of ${CLIENT} (npm ci)`);
      await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], CLIENT, timeoutMs);
    }
    const want = digest(EXAMPLE, MANIFESTS);
    if (readStamp(INSTALL_STAMP) === want) return;
    log(`installing the dependencies of ${EXAMPLE} (npm ci)`);
    await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], EXAMPLE, timeoutMs);
    writeFileSync(INSTALL_STAMP, `${want}\n`);
  }, timeoutMs * 2);
}

/**
 * Build apps/web with Vite (to apps/web/build), unless built from the same sources, or `force`.
 * @param {StepOptions & { force?: boolean }} [options]
 */
export async function buildWeb({ force = false, timeoutMs = 300_000, log = () => {} } = {}) {
  await locked(async () => {
    const want = `${digest(WEB, WEB_SOURCES)} ${digest(EXAMPLE, MANIFESTS)}`;
    if (!force && readStamp(BUILD_STAMP) === want && existsSync(join(WEB, 'build', 'index.js'))) return;
    log(`building ${WEB} (vite build)`);
    // Vite's own entry point rather than npx: npx would fetch a package from the registry if it were missing.
    await run(process.execPath, [join(EXAMPLE, 'node_modules', 'vite', 'bin', 'vite.js'), 'build'], WEB, timeoutMs);
    writeFileSync(BUILD_STAMP, `${want}\n`);
  }, timeoutMs);
}

async function main() {
  const { values } = parseArgs({ options: { build: { type: 'boolean' }, 'force-build': { type: 'boolean' } } });
  const log = (/** @type {string} */ line) => console.error(line);
  await ensureInstalled({ log });
  if (values.build || values['force-build']) await buildWeb({ force: values['force-build'], log });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
