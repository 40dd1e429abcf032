// The spool: pending envelopes as files, one folder per DSN, written atomically and bounded in size. The layout is
// the Python SDK's (src/stackwatch/sdk/spool.py), so that both SDKs can be read, inspected and documented alike:
//
//     <spool dir>/<first 16 hex digits of sha256(DSN)>/
//         .dsn                                               the DSN this folder sends to (secret key removed)
//         .node-sender.lock                                  who sends from here (see lock.js)
//         .tmp-<name>                                        an envelope being written (renamed when complete)
//         01733912345678901234-4242-000017_error.envelope    pending envelopes
//
// A file's name is `<time in ns, 20 digits>-<pid>-<sequence>_<categories>.envelope`: lexical order is arrival order,
// and the data categories it holds (with their quantities, `attachment=2048`) can be read without opening it, which
// the size bound's loss accounting and the rate-limit checks need.
//
// `write` names the file, makes room and counts it at once, then writes it on libuv's threadpool (to `.tmp-<name>`,
// renamed to `<name>` when complete); its promise resolves when the file is in place. Until then the bytes stay in
// memory (`writing`), and the sender does not see the name. When the process exits before a write completed, an
// `exit` listener writes what is outstanding synchronously (to `.tmp-exit-<name>`, renamed to the same `<name>`: of
// the two renames, whichever comes last replaces a complete file with the same complete file). All the sender's file
// work (listing, reading, deleting, recounting) is asynchronous too.

import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdir,
  readdirSync,
  readFile,
  rename,
  renameSync,
  stat,
  unlink,
  unlinkSync,
  writeFile,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { decodeCategories, encodeCategories } from './envelope.js';
import { Heap } from './heap.js';
import { SenderLock } from './lock.js';
import { resolveSpoolDir } from './settings.js';

export const ENVELOPE_SUFFIX = '.envelope';
export const TEMP_PREFIX = '.tmp-';
export const DSN_NAME = '.dsn';
// A temporary file this old was left by a writer that died mid-write; younger ones may still be in progress.
const STALE_TEMP_MS = 600_000;
const SCAN_BATCH = 64;
// The bytes of the envelopes this process wrote last, up to this much, so that the sender need not read back what
// it has just written (a read costs the event loop more than the write did).
const RECENT_MAX_BYTES = 1024 * 1024;
// The callback forms: the sender's per-envelope file work costs the event loop a third less than with fs/promises.
const readdirAsync = promisify(readdir);
const readFileAsync = promisify(readFile);
const statAsync = promisify(stat);
const unlinkAsync = promisify(unlink);
const renameAsync = promisify(rename);
const writeFileAsync = promisify(writeFile);
// The temporary name of an envelope written synchronously at exit, while its asynchronous write may still run.
const EXIT_TEMP_PREFIX = `${TEMP_PREFIX}exit-`;
/** @type {Set<DiskSpool>} every spool with writes not yet complete, for the exit listener */
const OUTSTANDING = new Set();

/** @typedef {import('./envelope.js').Quantity} Quantity */

/**
 * What `Store.write` gives back: the pairs of what was evicted to make room (or of this envelope, when it could
 * never fit), and a promise that resolves when the envelope is stored — with null, or with the error that kept it
 * from its file (it is then no longer counted: the caller stores it elsewhere). The promise never rejects.
 * @typedef {{ lost: Quantity[], done: Promise<unknown> }} WriteResult
 */

/**
 * An envelope being written: its bytes until the file is in place.
 * @typedef {{ name: string, data: Buffer, cancelled: boolean, renaming: boolean }} Outstanding
 */

/**
 * Where pending envelopes wait: a folder (DiskSpool) or, as a fallback, memory (MemorySpool).
 * @typedef {{
 *   durable: boolean,
 *   maxBytes: number,
 *   inFlight: string | null,
 *   readonly totalBytes: number,
 *   write(data: Buffer, quantities: Quantity[]): WriteResult,
 *   settled(): Promise<void>,
 *   pending(fresh?: boolean): Promise<string[]>,
 *   read(name: string): Promise<Buffer | null>,
 *   remove(name: string): Promise<void>,
 *   refresh(): Promise<void>,
 *   tryLock(): Promise<boolean>,
 *   unlock(): void,
 * }} Store
 */

/**
 * The folder of `spoolDir` (by default the one resolveSpoolDir() chooses) that holds the envelopes for `dsn`: the
 * Python SDK's folder_for.
 * @param {string} dsn
 * @param {string} [spoolDir]
 */
export function folderFor(dsn, spoolDir = resolveSpoolDir()) {
  return join(spoolDir, createHash('sha256').update(dsn).digest('hex').slice(0, 16));
}

/**
 * Names of the envelope files waiting in `folder`, oldest first (none when the folder does not exist).
 * @param {string} folder
 * @returns {string[]}
 */
export function spoolFiles(folder) {
  try {
    return readdirSync(folder).filter(isEnvelopeName).sort();
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code === 'ENOENT') return [];
    throw error;
  }
}

/** @param {string} name */
function isEnvelopeName(name) {
  return name.endsWith(ENVELOPE_SUFFIX) && !name.startsWith('.');
}

let lastNs = 0n;

/** Wall-clock nanoseconds, strictly increasing within this process. */
function nowNs() {
  let ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  if (ns <= lastNs) ns = lastNs + 1n;
  lastNs = ns;
  return ns;
}

/** @implements {Store} */
export class DiskSpool {
  durable = true;
  /** @type {string | null} the name being sent right now: never evicted */
  inFlight = null;

  /**
   * Opens (creating it) the folder; throws when it cannot be written.
   * @param {string} folder
   * @param {{
   *   maxBytes: number,
   *   fsync: boolean,
   *   dsn?: string,
   *   listSeconds: number,
   *   heartbeatSeconds: number,
   *   staleLockSeconds: number,
   * }} options
   */
  constructor(folder, { maxBytes, fsync, dsn, listSeconds, heartbeatSeconds, staleLockSeconds }) {
    this.folder = folder;
    this.maxBytes = maxBytes;
    this.fsync = fsync;
    this.listMs = listSeconds * 1000;
    this.listedAt = -Infinity;
    this.seq = 0;
    /** @type {Map<string, Buffer>} */
    this.recent = new Map();
    this.recentBytes = 0;
    /** @type {Map<string, Outstanding>} envelopes whose files are not in place yet: counted, not yet pending */
    this.writing = new Map();
    /** @type {Set<Promise<unknown>>} */
    this.writes = new Set();
    // sizes is what this process believes is stored; heap orders its names for eviction and may hold names
    // already removed (skipped when popped, dropped when a refresh rebuilds it).
    /** @type {Map<string, number>} */
    this.sizes = new Map();
    this.heap = new Heap();
    this.total = 0;
    // While refresh() lists the folder, what this process writes and removes meanwhile (merged afterwards).
    this.scanning = false;
    /** @type {Map<string, number>} */
    this.addedInScan = new Map();
    /** @type {Set<string>} */
    this.removedInScan = new Set();
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    this.writeAtomically(`${TEMP_PREFIX}probe-${process.pid}`, Buffer.alloc(0));
    unlinkSync(join(folder, `${TEMP_PREFIX}probe-${process.pid}`));
    if (dsn !== undefined && !existsSync(join(folder, DSN_NAME))) {
      this.writeAtomically(DSN_NAME, Buffer.from(withoutSecret(dsn) + '\n'));
    }
    this.lock = new SenderLock(folder, { heartbeatSeconds, staleLockSeconds });
  }

  get totalBytes() {
    return this.total;
  }

  /**
   * Store an envelope: counted (and room made for it) at once, its file written asynchronously (see WriteResult).
   * @param {Buffer} data
   * @param {Quantity[]} quantities
   * @returns {WriteResult}
   */
  write(data, quantities) {
    if (data.length > this.maxBytes) return { lost: quantities, done: Promise.resolve(null) };
    const seq = String(this.seq++).padStart(6, '0');
    const name = `${String(nowNs()).padStart(20, '0')}-${process.pid}-${seq}_${encodeCategories(quantities)}${ENVELOPE_SUFFIX}`;
    const lost = this.makeRoom(data.length);
    /** @type {Outstanding} */
    const entry = { name, data, cancelled: false, renaming: false };
    this.writing.set(name, entry);
    OUTSTANDING.add(this);
    this.add(name, data.length);
    const done = this.writeAsync(entry).then(
      () => {
        this.finished(entry);
        if (!entry.cancelled) this.remember(name, data);
        return null;
      },
      (error) => {
        this.finished(entry);
        if (entry.cancelled) return null;
        this.drop(name);
        return error;
      },
    );
    this.writes.add(done);
    done.then(() => this.writes.delete(done));
    return { lost, done };
  }

  /**
   * The asynchronous twin of writeAtomically, on libuv's threadpool. An entry evicted meanwhile (cancelled) is not
   * renamed into place, or is deleted again if it was.
   * @param {Outstanding} entry
   */
  async writeAsync(entry) {
    const temp = join(this.folder, TEMP_PREFIX + entry.name);
    const target = join(this.folder, entry.name);
    try {
      if (this.fsync) {
        const handle = await openAsync(temp, 'wx', 0o600);
        try {
          await handle.writeFile(entry.data);
          await handle.sync();
        } finally {
          await handle.close();
        }
      } else {
        await writeFileAsync(temp, entry.data, { flag: 'wx', mode: 0o600 });
      }
      if (entry.cancelled) throw new Error('evicted');
      entry.renaming = true;
      await renameAsync(temp, target);
    } catch (error) {
      await unlinkAsync(temp).catch(() => {});
      throw error;
    }
    if (entry.cancelled) {
      await unlinkAsync(target).catch(() => {});
      return;
    }
    if (this.fsync) await fsyncDirectoryAsync(this.folder);
  }

  /** @param {Outstanding} entry */
  finished(entry) {
    if (this.writing.get(entry.name) === entry) this.writing.delete(entry.name);
    if (this.writing.size === 0) OUTSTANDING.delete(this);
  }

  /**
   * No longer count `name` (its file could not be written).
   * @param {string} name
   */
  drop(name) {
    const size = this.sizes.get(name);
    if (size !== undefined) {
      this.sizes.delete(name);
      this.total -= size;
    }
    if (this.scanning) this.removedInScan.add(name);
  }

  /** Resolves when every write started so far has completed (or failed). */
  async settled() {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  /**
   * Write every envelope whose asynchronous write has not completed, synchronously: for an `exit` listener, after
   * which no callback runs. Each goes to a temporary name of its own, renamed to the envelope's name; an
   * asynchronous rename of the same envelope at the same moment replaces one complete file with another.
   */
  writeOutstanding() {
    for (const entry of this.writing.values()) {
      if (entry.cancelled) continue;
      // Renamed already, its callback not run yet: the file is complete.
      if (entry.renaming && existsSync(join(this.folder, entry.name))) continue;
      try {
        this.writeAtomically(entry.name, entry.data, EXIT_TEMP_PREFIX);
      } catch {
        // the folder cannot be written: what memory held is lost with the process, as in the fallback
      }
    }
    this.writing.clear();
    OUTSTANDING.delete(this);
  }

  /**
   * @param {string} name
   * @param {Buffer} data
   */
  remember(name, data) {
    this.recent.set(name, data);
    this.recentBytes += data.length;
    for (const [old, bytes] of this.recent) {
      if (this.recentBytes <= RECENT_MAX_BYTES) break;
      this.forget(old, bytes);
    }
  }

  /**
   * @param {string} name
   * @param {Buffer | undefined} [bytes]
   */
  forget(name, bytes = this.recent.get(name)) {
    if (bytes !== undefined && this.recent.delete(name)) this.recentBytes -= bytes.length;
  }

  /**
   * @param {string} name
   * @param {Buffer} data
   * @param {string} [prefix] of the temporary name
   */
  writeAtomically(name, data, prefix = TEMP_PREFIX) {
    const temp = join(this.folder, prefix + name);
    try {
      if (this.fsync) {
        const fd = openSync(temp, 'wx', 0o600);
        try {
          for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      } else {
        writeFileSync(temp, data, { flag: 'wx', mode: 0o600 });
      }
      renameSync(temp, join(this.folder, name));
    } catch (error) {
      try {
        unlinkSync(temp);
      } catch {
        // never created
      }
      throw error;
    }
    if (this.fsync) fsyncDirectory(this.folder);
  }

  /**
   * @param {string} name
   * @param {number} size
   */
  add(name, size) {
    this.sizes.set(name, size);
    this.total += size;
    this.heap.push(name);
    if (this.scanning) this.addedInScan.set(name, size);
  }

  /**
   * Delete the oldest envelopes until `size` more bytes fit; the pairs of what they held.
   * @param {number} size
   * @returns {Quantity[]}
   */
  makeRoom(size) {
    /** @type {Quantity[]} */
    const lost = [];
    let skipped = null;
    while (this.total + size > this.maxBytes && this.heap.size > 0) {
      const name = /** @type {string} */ (this.heap.pop());
      const victim = this.sizes.get(name);
      if (victim === undefined) continue;
      if (name === this.inFlight) {
        skipped = name;
        continue;
      }
      this.sizes.delete(name);
      this.total -= victim;
      this.forget(name);
      if (this.scanning) this.removedInScan.add(name);
      const outstanding = this.writing.get(name);
      if (outstanding !== undefined) {
        // Not in place yet: its write leaves no file behind (see writeAsync).
        outstanding.cancelled = true;
        this.writing.delete(name);
        lost.push(...decodeCategories(name));
        continue;
      }
      try {
        unlinkSync(join(this.folder, name));
      } catch {
        continue; // delivered by another process since this one last looked: not lost
      }
      lost.push(...decodeCategories(name));
    }
    if (skipped !== null) this.heap.push(skipped);
    return lost;
  }

  /**
   * Names of the stored envelopes, oldest first. The folder is listed when `fresh`, or when it was last listed more
   * than `listSeconds` ago (other processes' files appear then); otherwise the names come from what this process
   * knows (its own writes, and what the last recount found).
   * @param {boolean} [fresh]
   */
  async pending(fresh = false) {
    const now = performance.now();
    if (!fresh && now - this.listedAt < this.listMs) {
      return [...this.sizes.keys()].filter((name) => !this.writing.has(name)).sort();
    }
    // Only a regular listing restarts the `listSeconds` count. A fresh one is for its caller alone: a flush lists
    // every 50 ms, and when its listings counted too, the sender never listed while a flush waited, and never saw
    // the other processes' files that the flush was waiting for.
    if (!fresh) this.listedAt = now;
    // A name whose rename is done but whose write has not reported back yet is left for the next listing.
    return (await readdirAsync(this.folder)).filter((name) => isEnvelopeName(name) && !this.writing.has(name)).sort();
  }

  /** @param {string} name */
  async read(name) {
    const cached = this.recent.get(name);
    if (cached !== undefined) return cached;
    try {
      return await readFileAsync(join(this.folder, name));
    } catch (error) {
      if (/** @type {NodeJS.ErrnoException} */ (error).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** @param {string} name */
  async remove(name) {
    this.forget(name);
    await unlinkAsync(join(this.folder, name)).catch(() => {});
    const size = this.sizes.get(name);
    if (size !== undefined) {
      this.sizes.delete(name);
      this.total -= size;
    }
    if (this.scanning) this.removedInScan.add(name);
    // The sender removes oldest first, so this usually pops exactly the name just removed.
    while (this.heap.size > 0 && !this.sizes.has(/** @type {string} */ (this.heap.peek()))) this.heap.pop();
  }

  /** Recount what is stored: other processes write and delete too. Removes temporary files left by dead writers. */
  async refresh() {
    this.scanning = true;
    this.addedInScan = new Map();
    this.removedInScan = new Set();
    /** @type {Map<string, number>} */
    let found;
    try {
      found = await this.scan();
    } finally {
      this.scanning = false;
    }
    for (const [name, size] of this.addedInScan) if (!found.has(name)) found.set(name, size);
    for (const name of this.removedInScan) found.delete(name);
    // Writes started before the scan whose files were not in place when it listed the folder.
    for (const [name, entry] of this.writing) if (!found.has(name)) found.set(name, entry.data.length);
    this.sizes = found;
    this.heap = new Heap([...found.keys()].sort());
    this.total = 0;
    for (const size of found.values()) this.total += size;
  }

  async scan() {
    /** @type {Map<string, number>} */
    const found = new Map();
    const now = Date.now();
    const names = (await readdirAsync(this.folder)).filter((name) => isEnvelopeName(name) || name.startsWith(TEMP_PREFIX));
    // In batches: one turn of the event loop per batch rather than per file, which matters during a burst of
    // captures, when every turn is long.
    for (let at = 0; at < names.length; at += SCAN_BATCH) {
      const batch = names.slice(at, at + SCAN_BATCH);
      const infos = await Promise.all(batch.map((name) => statAsync(join(this.folder, name)).catch(() => null)));
      batch.forEach((name, i) => {
        const info = infos[i];
        if (info === null) return; // sent or removed meanwhile
        if (isEnvelopeName(name)) found.set(name, info.size);
        else if (now - info.mtimeMs > STALE_TEMP_MS) unlinkAsync(join(this.folder, name)).catch(() => {});
      });
    }
    return found;
  }

  tryLock() {
    return this.lock.tryAcquire();
  }

  unlock() {
    this.lock.release();
  }
}

/** @param {string} folder */
function fsyncDirectory(folder) {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** @param {string} folder */
async function fsyncDirectoryAsync(folder) {
  const handle = await openAsync(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** For an `exit` listener: write every spool's outstanding envelopes synchronously (see writeOutstanding). */
export function writeAllOutstanding() {
  for (const spool of [...OUTSTANDING]) spool.writeOutstanding();
}

/**
 * The DSN without a secret key (`https://public:secret@host/1` → `https://public@host/1`).
 * @param {string} dsn
 */
export function withoutSecret(dsn) {
  try {
    const url = new URL(dsn);
    if (!url.password) return dsn;
    url.password = '';
    return url.toString();
  } catch {
    return dsn.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1@');
  }
}
