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
export function folderFor(dsn: string, spoolDir?: string): string;
/**
 * Names of the envelope files waiting in `folder`, oldest first (none when the folder does not exist).
 * @param {string} folder
 * @returns {string[]}
 */
export function spoolFiles(folder: string): string[];
/** For an `exit` listener: write every spool's outstanding envelopes synchronously (see writeOutstanding). */
export function writeAllOutstanding(): void;
/**
 * The DSN without a secret key (`https://public:secret@host/1` → `https://public@host/1`).
 * @param {string} dsn
 */
export function withoutSecret(dsn: string): string;
export const ENVELOPE_SUFFIX: ".envelope";
export const TEMP_PREFIX: ".tmp-";
export const DSN_NAME: ".dsn";
/** @implements {Store} */
export class DiskSpool implements Store {
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
    constructor(folder: string, { maxBytes, fsync, dsn, listSeconds, heartbeatSeconds, staleLockSeconds }: {
        maxBytes: number;
        fsync: boolean;
        dsn?: string;
        listSeconds: number;
        heartbeatSeconds: number;
        staleLockSeconds: number;
    });
    durable: boolean;
    /** @type {string | null} the name being sent right now: never evicted */
    inFlight: string | null;
    folder: string;
    maxBytes: number;
    fsync: boolean;
    listMs: number;
    listedAt: number;
    seq: number;
    /** @type {Map<string, Buffer>} */
    recent: Map<string, Buffer>;
    recentBytes: number;
    /** @type {Map<string, Outstanding>} envelopes whose files are not in place yet: counted, not yet pending */
    writing: Map<string, Outstanding>;
    /** @type {Set<Promise<unknown>>} */
    writes: Set<Promise<unknown>>;
    /** @type {Map<string, number>} */
    sizes: Map<string, number>;
    heap: Heap;
    total: number;
    scanning: boolean;
    /** @type {Map<string, number>} */
    addedInScan: Map<string, number>;
    /** @type {Set<string>} */
    removedInScan: Set<string>;
    lock: SenderLock;
    get totalBytes(): number;
    /**
     * Store an envelope: counted (and room made for it) at once, its file written asynchronously (see WriteResult).
     * @param {Buffer} data
     * @param {Quantity[]} quantities
     * @returns {WriteResult}
     */
    write(data: Buffer, quantities: Quantity[]): WriteResult;
    /**
     * The asynchronous twin of writeAtomically, on libuv's threadpool. An entry evicted meanwhile (cancelled) is not
     * renamed into place, or is deleted again if it was.
     * @param {Outstanding} entry
     */
    writeAsync(entry: Outstanding): Promise<void>;
    /** @param {Outstanding} entry */
    finished(entry: Outstanding): void;
    /**
     * No longer count `name` (its file could not be written).
     * @param {string} name
     */
    drop(name: string): void;
    /** Resolves when every write started so far has completed (or failed). */
    settled(): Promise<void>;
    /**
     * Write every envelope whose asynchronous write has not completed, synchronously: for an `exit` listener, after
     * which no callback runs. Each goes to a temporary name of its own, renamed to the envelope's name; an
     * asynchronous rename of the same envelope at the same moment replaces one complete file with another.
     */
    writeOutstanding(): void;
    /**
     * @param {string} name
     * @param {Buffer} data
     */
    remember(name: string, data: Buffer): void;
    /**
     * @param {string} name
     * @param {Buffer | undefined} [bytes]
     */
    forget(name: string, bytes?: Buffer | undefined): void;
    /**
     * @param {string} name
     * @param {Buffer} data
     * @param {string} [prefix] of the temporary name
     */
    writeAtomically(name: string, data: Buffer, prefix?: string): void;
    /**
     * @param {string} name
     * @param {number} size
     */
    add(name: string, size: number): void;
    /**
     * Delete the oldest envelopes until `size` more bytes fit; the pairs of what they held.
     * @param {number} size
     * @returns {Quantity[]}
     */
    makeRoom(size: number): Quantity[];
    /**
     * Names of the stored envelopes, oldest first. The folder is listed when `fresh`, or when it was last listed more
     * than `listSeconds` ago (other processes' files appear then); otherwise the names come from what this process
     * knows (its own writes, and what the last recount found).
     * @param {boolean} [fresh]
     */
    pending(fresh?: boolean): Promise<string[]>;
    /** @param {string} name */
    read(name: string): Promise<Buffer<ArrayBufferLike> | null>;
    /** @param {string} name */
    remove(name: string): Promise<void>;
    /** Recount what is stored: other processes write and delete too. Removes temporary files left by dead writers. */
    refresh(): Promise<void>;
    scan(): Promise<Map<string, number>>;
    tryLock(): Promise<boolean>;
    unlock(): void;
}
export type Quantity = import("./envelope.js").Quantity;
/**
 * What `Store.write` gives back: the pairs of what was evicted to make room (or of this envelope, when it could
 * never fit), and a promise that resolves when the envelope is stored — with null, or with the error that kept it
 * from its file (it is then no longer counted: the caller stores it elsewhere). The promise never rejects.
 */
export type WriteResult = {
    lost: Quantity[];
    done: Promise<unknown>;
};
/**
 * An envelope being written: its bytes until the file is in place.
 */
export type Outstanding = {
    name: string;
    data: Buffer;
    cancelled: boolean;
    renaming: boolean;
};
/**
 * Where pending envelopes wait: a folder (DiskSpool) or, as a fallback, memory (MemorySpool).
 */
export type Store = {
    durable: boolean;
    maxBytes: number;
    inFlight: string | null;
    readonly totalBytes: number;
    write(data: Buffer, quantities: Quantity[]): WriteResult;
    settled(): Promise<void>;
    pending(fresh?: boolean): Promise<string[]>;
    read(name: string): Promise<Buffer | null>;
    remove(name: string): Promise<void>;
    refresh(): Promise<void>;
    tryLock(): Promise<boolean>;
    unlock(): void;
};
import { Heap } from './heap.js';
import { SenderLock } from './lock.js';
