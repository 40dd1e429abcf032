// Starting test/support/child.js and following what it says.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

import { folderFor } from '../../src/transport/index.js';
import { FAST, tempDir } from './envelopes.js';
import { startRecorder } from './recorder.js';

const CHILD = new URL('./child.js', import.meta.url).pathname;

/**
 * @typedef {{
 *   dsn: string,
 *   settings?: import('../../src/transport/index.js').SpoolSettings,
 *   scenario: string,
 *   count?: number,
 *   flushMs?: number,
 *   shutdownTimeout?: number,
 *   sentry?: Record<string, unknown>,
 *   stackwatch?: boolean,
 * }} ChildConfig
 */

/**
 * Start a child; its stdout lines (JSON) collect in `messages`, its stderr in `stderr`.
 * @param {ChildConfig} config
 */
export function startChild(config) {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  /** @type {any[]} */
  const messages = [];
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (text) => {
    stderr += text;
  });
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line));
    } catch {
      messages.push({ text: line });
    }
  });
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const child = {
    proc,
    messages,
    exited,
    get stderr() {
      return stderr;
    },
    /** Event ids the child handed to the transport. */
    get captured() {
      return messages.filter((m) => m.captured).map((m) => m.captured);
    },
    /** The last state the child reported. */
    get state() {
      return messages.filter((m) => m.state).at(-1)?.state;
    },
    /**
     * Resolves once `predicate(messages)` holds; rejects when the child exits first or after `timeoutMs`.
     * @param {(messages: any[]) => boolean} predicate
     * @param {string} what
     * @param {number} [timeoutMs]
     */
    async waitFor(predicate, what, timeoutMs = 15_000) {
      let gone = false;
      exited.then(() => {
        gone = true;
      });
      const deadline = performance.now() + timeoutMs;
      while (!predicate(messages)) {
        if (gone) {
          await new Promise((resolve) => setTimeout(resolve, 50)); // the last lines may still be on their way
          if (predicate(messages)) return;
          throw new Error(`the child exited before ${what}; stderr:\n${stderr}`);
        }
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    /** @param {string} command */
    tell(command) {
      proc.stdin.write(command + '\n');
    },
    /** Ask the child to exit; resolves with how it ended. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) child.tell('exit');
      return exited;
    },
  };
  return child;
}

/**
 * Run a child to its end; what it said and how it ended.
 * @param {ChildConfig} config
 * @param {number} [timeoutMs]
 */
export async function runChild(config, timeoutMs = 20_000) {
  const child = startChild(config);
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs);
  const end = await child.exited;
  clearTimeout(timer);
  return { ...end, child };
}

/**
 * A recording server, a temporary spool directory and the children started on them (killed, and the directory
 * removed, when the test ends). `start` starts a child on the spool with the FAST settings; `replay` runs a next
 * process on it that sends what is there and exits.
 * @param {import('node:test').TestContext} t
 * @param {Parameters<typeof startRecorder>[0]} [options]
 */
export async function spoolSetUp(t, options) {
  const recorder = await startRecorder(options);
  const { dir, remove } = tempDir();
  /** @type {ReturnType<typeof startChild>[]} */
  const children = [];
  t.after(async () => {
    for (const child of children) child.proc.kill('SIGKILL');
    await recorder.close();
    remove();
  });
  /** @param {Omit<ChildConfig, 'dsn'>} config */
  const configure = (config) => ({ dsn: recorder.dsn(), ...config, settings: { ...FAST, spoolDir: dir, ...config.settings } });
  /** @param {Omit<ChildConfig, 'dsn'>} config */
  const start = (config) => {
    const child = startChild(configure(config));
    children.push(child);
    return child;
  };
  const replay = async () => {
    const { code, child } = await runChild(configure({ scenario: 'replay' }));
    assert.equal(code, 0, child.stderr);
    return child;
  };
  return { recorder, dir, folder: folderFor(recorder.dsn(), dir), start, replay };
}
