export class Heap {
    /** @param {string[]} [sorted] items already in ascending order (a sorted array is a heap) */
    constructor(sorted?: string[]);
    /** @type {string[]} */
    items: string[];
    get size(): number;
    peek(): string;
    /** @param {string} item */
    push(item: string): void;
    pop(): string;
}
