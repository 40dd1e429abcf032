/** @typedef {import('./envelope.js').Quantity} Quantity */
export class LostEvents {
    /** @type {Map<string, number>} `reason:category` → quantity */
    counts: Map<string, number>;
    /**
     * @param {string} reason
     * @param {string} category
     * @param {number} [quantity]
     */
    add(reason: string, category: string, quantity?: number): void;
    /**
     * @param {string} reason
     * @param {Iterable<Quantity>} pairs
     */
    addAll(reason: string, pairs: Iterable<Quantity>): void;
    get pending(): boolean;
    /**
     * Everything counted so far (and reset) as a client report envelope, or undefined when there is nothing.
     * @returns {Buffer | undefined}
     */
    takeReport(): Buffer | undefined;
}
export type Quantity = import("./envelope.js").Quantity;
