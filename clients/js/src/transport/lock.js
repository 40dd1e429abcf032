// The sender lock of a spool folder: which one process sends its files. Node has no flock, so the lock is a file of
// its own, `.node-sender.lock`, holding who holds it (pid, the process's start time, host, boot id and a token per
// transport). It is created whole or not at all (written aside, then hard-linked into place, which fails when the
// name exists), refreshed by its holder every `heartbeatSeconds` (its mtime), and removed by its holder on close and
// at exit. A lock whose holder is dead (no such pid, a zombie, or a pid reused by a later process: its start time
// differs) is taken over at once; one that has not been refreshed for `staleLockSeconds` is taken over too, which
// covers holders this machine cannot see (another host or container sharing the folder) and frozen ones. A holder
// that finds the file no longer names it stops sending at its next check.
//
// It is not the Python SDK's `.sender.lock` (an flock that Node cannot take): Python and Node processes sharing one
// folder each elect their own sender (see docs/sdk-js-spool.md).

import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_NAME = '.node-sender.lock';

/** @typedef {{ pid: number, start: string, host: string, boot: string, token: string }} Holder */

/** @type {{ boot: string, start: string } | undefined} */
let identity;

/** This machine's boot id and this process's start time (clock ticks since boot, or a wall-clock estimate). */
function self() {
  if (identity === undefined) {
    identity = {
      boot: readText('/proc/sys/kernel/random/boot_id') ?? '',
      start: startTicks(process.pid) ?? `ms${Math.round(Date.now() - process.uptime() * 1000)}`,
    };
  }
  return identity;
}

/** @param {string} path */
function readText(path) {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses), or undefined.
 * @param {number} pid
 */
function procStat(pid) {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** @param {number} pid */
function startTicks(pid) {
  return procStat(pid)?.[19]; // field 22, starttime: fields are numbered from 1 and these start at field 3
}

/**
 * Whether the process that wrote `holder` is certainly gone. False when it lives or cannot be seen from here.
 * @param {Holder} holder
 */
function holderIsDead(holder) {
  const me = self();
  if (holder.host !== hostname() || holder.boot !== me.boot) return false;
  if (holder.pid === process.pid) return holder.start !== me.start; // another transport here, or a pid reused
  if (!Number.isSafeInteger(holder.pid) || holder.pid <= 0) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    return /** @type {NodeJS.ErrnoException} */ (error).code === 'ESRCH';
  }
  const fields = procStat(holder.pid);
  if (fields === undefined) return false; // no /proc: the pid exists, take it for the holder
  return fields[0] === 'Z' || fields[0] === 'X' || fields[19] !== holder.start;
}

export class SenderLock {
  /**
   * @param {string} folder
   * @param {{ heartbeatSeconds: number, staleLockSeconds: number }} timings
   */
  constructor(folder, { heartbeatSeconds, staleLockSeconds }) {
    this.path = join(folder, LOCK_NAME);
    this.folder = folder;
    this.heartbeatMs = heartbeatSeconds * 1000;
    this.staleMs = staleLockSeconds * 1000;
    /** @type {Holder} */
    this.me = { pid: process.pid, ...self(), host: hostname(), token: randomBytes(8).toString('hex') };
    this.text = JSON.stringify(this.me) + '\n';
    this.held = false;
    /** @type {NodeJS.Timeout | undefined} */
    this.timer = undefined;
    /** @type {Promise<void> | undefined} */
    this.beating = undefined;
    // The lock written aside while an attempt is in progress (a flush makes one every 50 ms): an exit in that moment
    // removes it, rather than leave it to the recount's ten-minute rule for temporary files.
    /** @type {string | null} */
    this.temp = null;
  }

  /** Become (or stay) the sender. Never throws: an unreadable folder counts as "not the sender". */
  async tryAcquire() {
    if (this.held) return true;
    try {
      if (await this.create()) return this.hold();
      const [text, info] = await Promise.all([readFile(this.path, 'utf8'), stat(this.path)]);
      if (text === this.text) return this.hold(); // ours, from before a lost check
      if (!this.isStale(text, info.mtimeMs)) return false;
      return (await this.takeOver(text)) && this.hold();
    } catch {
      return false; // the lock changed hands while we looked: try again later
    }
  }

  /** Write the lock if there is none; false when it exists. */
  async create() {
    const temp = join(this.folder, `.tmp-lock-${this.me.pid}-${this.me.token}`);
    this.temp = temp;
    try {
      await writeFile(temp, this.text, { mode: 0o600 });
      await link(temp, this.path);
      return true;
    } catch (error) {
      if (/** @type {NodeJS.ErrnoException} */ (error).code === 'EEXIST') return false;
      throw error;
    } finally {
      await unlink(temp).catch(() => {});
      this.temp = null;
    }
  }

  /**
   * @param {string} text
   * @param {number} mtimeMs
   */
  isStale(text, mtimeMs) {
    if (Date.now() - mtimeMs > this.staleMs) return true;
    let holder;
    try {
      holder = JSON.parse(text);
    } catch {
      return false; // being written by a process of another version? the heartbeat bound decides
    }
    return holderIsDead(holder);
  }

  /**
   * Replace a stale lock whose content is `text`. It is first moved aside, so that of several processes taking it
   * over at once only one moves that file; one that moved a fresh lock instead (written in between) puts it back.
   * @param {string} text
   */
  async takeOver(text) {
    const aside = join(this.folder, `.tmp-stale-${this.me.pid}-${this.me.token}`);
    await rename(this.path, aside);
    const moved = await readFile(aside, 'utf8').catch(() => '');
    if (moved !== text) {
      await link(aside, this.path).catch(() => {});
      await unlink(aside).catch(() => {});
      return false;
    }
    await unlink(aside).catch(() => {});
    return this.create();
  }

  hold() {
    this.held = true;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.beating ??= this.beat().finally(() => {
          this.beating = undefined;
        });
      }, this.heartbeatMs);
      this.timer.unref();
    }
    return true;
  }

  /** Refresh the lock's mtime while it still names this transport; notice when it does not. */
  async beat() {
    if (!this.held) return;
    try {
      if ((await readFile(this.path, 'utf8')) !== this.text) throw new Error('taken over');
      const now = new Date();
      await utimes(this.path, now, now);
    } catch {
      this.lose();
    }
  }

  lose() {
    this.held = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Give the lock up (synchronous, so that it also works in an `exit` listener). The file goes whenever it names this
   * transport, held or not: an exit may come between creating it and knowing it (an attempt in progress).
   */
  release() {
    this.lose();
    try {
      if (this.temp !== null) unlinkSync(this.temp);
    } catch {
      // not written yet, or gone already
    }
    try {
      if (readFileSync(this.path, 'utf8') === this.text) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}
