/** @typedef {import('./envelope.js').Quantity} Quantity */
/** @typedef {import('./spool.js').Store} Store */
/** @implements {Store} */
export class MemorySpool implements Store {
    /** @param {{ maxBytes: number }} options */
    constructor({ maxBytes }: {
        maxBytes: number;
    });
    durable: boolean;
    /** @type {string | null} */
    inFlight: string | null;
    maxBytes: number;
    /** @type {Map<string, Buffer>} */
    items: Map<string, Buffer>;
    total: number;
    seq: number;
    get totalBytes(): number;
    /**
     * @param {Buffer} data
     * @param {Quantity[]} quantities
     * @returns {import('./spool.js').WriteResult}
     */
    write(data: Buffer, quantities: Quantity[]): import("./spool.js").WriteResult;
    settled(): Promise<void>;
    /** @param {boolean} [_fresh] */
    pending(_fresh?: boolean): Promise<string[]>;
    /** @param {string} name */
    read(name: string): Promise<Buffer<ArrayBufferLike> | null>;
    /** @param {string} name */
    remove(name: string): Promise<void>;
    refresh(): Promise<void>;
    tryLock(): Promise<boolean>;
    unlock(): void;
}
export type Quantity = import("./envelope.js").Quantity;
export type Store = import("./spool.js").Store;
