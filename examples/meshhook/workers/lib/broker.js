// The queue between worker processes for the demo: the parent forks the workers and relays jobs between them over
// their IPC channels, each job to one subscriber of its topic (round robin), as a real queue delivers. It counts
// the jobs not yet done, so the demo knows when every run has ended.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** @typedef {import('./queue.js').Job} Job */
/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

export class Broker {
  /** @type {{ name: string, child: ChildProcess, exited: Promise<number | null> }[]} */
  #workers = [];
  /** @type {Map<string, ChildProcess[]>} */
  #subscribers = new Map();
  /** @type {Map<string, Job[]>} */
  #waiting = new Map();
  /** @type {Map<string, (job: Job) => void>} */
  #own = new Map();
  #outstanding = 0;
  #turn = 0;
  /** @type {Set<() => void>} */
  #idle = new Set();

  /**
   * Fork the worker module `file` with `env`.
   * @param {string} name
   * @param {string | URL} file
   * @param {NodeJS.ProcessEnv} env
   */
  start(name, file, env) {
    const child = fork(file, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (message) => this.#receive(child, /** @type {any} */ (message)));
    const exited = once(child, 'exit').then(([code]) => {
      for (const list of this.#subscribers.values()) {
        const at = list.indexOf(child);
        if (at >= 0) list.splice(at, 1);
      }
      return /** @type {number | null} */ (code);
    });
    this.#workers.push({ name, child, exited });
  }

  /**
   * Consume `topic` in this process (jobs on it are not counted as outstanding).
   * @param {string} topic
   * @param {(job: Job) => void} handler
   */
  on(topic, handler) {
    this.#own.set(topic, handler);
  }

  /**
   * @param {string} topic
   * @param {Record<string, any>} data
   */
  publish(topic, data) {
    this.#route({ id: randomUUID(), topic, attempt: 1, data });
  }

  /**
   * @param {ChildProcess} child
   * @param {{ type: string, topic?: string, job?: Job }} message
   */
  #receive(child, message) {
    if (message.type === 'subscribe' && message.topic) {
      const list = this.#subscribers.get(message.topic) ?? [];
      list.push(child);
      this.#subscribers.set(message.topic, list);
      const waiting = this.#waiting.get(message.topic) ?? [];
      this.#waiting.delete(message.topic);
      for (const job of waiting) this.#deliver(job);
    } else if (message.type === 'publish' && message.job) {
      this.#route(message.job);
    } else if (message.type === 'done') {
      this.#outstanding -= 1;
      if (this.#outstanding === 0) for (const wake of [...this.#idle]) wake();
    }
  }

  /** @param {Job} job */
  #route(job) {
    const own = this.#own.get(job.topic);
    if (own) {
      own(job);
      return;
    }
    this.#outstanding += 1;
    this.#deliver(job);
  }

  /** @param {Job} job */
  #deliver(job) {
    const list = this.#subscribers.get(job.topic) ?? [];
    if (!list.length) {
      this.#waiting.set(job.topic, [...(this.#waiting.get(job.topic) ?? []), job]);
      return;
    }
    this.#turn += 1;
    list[this.#turn % list.length].send({ type: 'job', job });
  }

  /**
   * Resolves true once no job is outstanding, false if `timeoutMs` passes first.
   * @param {number} timeoutMs
   */
  async idle(timeoutMs) {
    if (this.#outstanding === 0) return true;
    /** @type {() => void} */
    let wake = () => {};
    const idle = new Promise((resolve) => {
      wake = () => resolve(true);
      this.#idle.add(wake);
    });
    const timer = new AbortController();
    const result = await Promise.race([idle, sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false)]);
    timer.abort();
    this.#idle.delete(wake);
    return /** @type {boolean} */ (result);
  }

  /**
   * Tell every worker to stop; those still running after `timeoutMs` are killed. Returns each one's exit code.
   * @param {number} timeoutMs
   * @returns {Promise<Record<string, number | null>>}
   */
  async stop(timeoutMs) {
    for (const { child } of this.#workers) if (child.connected) child.send({ type: 'stop' });
    const timer = new AbortController();
    const deadline = sleep(timeoutMs, 'late', { signal: timer.signal }).catch(() => 'stopped');
    /** @type {Record<string, number | null>} */
    const codes = {};
    for (const { name, child, exited } of this.#workers) {
      if ((await Promise.race([exited, deadline])) === 'late') child.kill('SIGKILL');
      codes[name] = await exited;
    }
    timer.abort();
    return codes;
  }
}
