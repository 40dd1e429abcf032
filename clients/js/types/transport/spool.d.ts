/** @typedef {import('./envelope.js').Quantity} Quantity */
/**
 * Where pending envelopes wait: a folder (DiskSpool) or, as a fallback, memory (MemorySpool).
 * @typedef {{
 *   durable: boolean,
 *   maxBytes: number,
 *   inFlight: string | null,
 *   readonly totalBytes: number,
 *   write(data: Buffer, quantities: Quantity[]): Quantity[],
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
     * Store an envelope, synchronously; return the pairs of what was evicted to make room (or of this envelope, when
     * it could never fit). Throws when the file cannot be written.
     * @param {Buffer} data
     * @param {Quantity[]} quantities
     * @returns {Quantity[]}
     */
    write(data: Buffer, quantities: Quantity[]): Quantity[];
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
     */
    writeAtomically(name: string, data: Buffer): void;
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
 * Where pending envelopes wait: a folder (DiskSpool) or, as a fallback, memory (MemorySpool).
 */
export type Store = {
    durable: boolean;
    maxBytes: number;
    inFlight: string | null;
    readonly totalBytes: number;
    write(data: Buffer, quantities: Quantity[]): Quantity[];
    pending(fresh?: boolean): Promise<string[]>;
    read(name: string): Promise<Buffer | null>;
    remove(name: string): Promise<void>;
    refresh(): Promise<void>;
    tryLock(): Promise<boolean>;
    unlock(): void;
};
import { Heap } from './heap.js';
import { SenderLock } from './lock.js';
