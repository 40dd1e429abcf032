/**
 * The length of `text` in code points.
 * @param {string} text
 */
export function codePoints(text: string): number;
/**
 * The rule set that scrubs strings under `options` (its `scrub(text)` gives a Scrubbed).
 * @param {ScrubOptions} [options]
 */
export function stringScrubber(options?: ScrubOptions): RuleSet;
/**
 * Replace every secret-looking part of `text`; return the new text and one remark per replacement.
 * @param {string} text
 * @param {ScrubOptions} [options]
 * @returns {[string, Remark[]]}
 */
export function scrubText(text: string, options?: ScrubOptions): [string, Remark[]];
/** Forget every cached result (for measuring the cost of strings never seen before). */
export function clearCache(): void;
/**
 * A bounded map that forgets what was not used for a while: two generations, the older one dropped when the
 * newer one is full. Cheaper than a strict LRU on every hit, and as good for text that repeats event to event.
 * @template V
 */
export class Cache<V> {
    /** @param {number} size */
    constructor(size: number);
    half: number;
    /** @type {Map<string, V>} */
    young: Map<string, V>;
    /** @type {Map<string, V>} */
    old: Map<string, V>;
    /**
     * @param {string} key
     * @returns {V | undefined}
     */
    get(key: string): V | undefined;
    /**
     * @param {string} key
     * @param {V} value
     */
    set(key: string, value: V): void;
    clear(): void;
}
export type Rule = import("./rules.js").Rule;
export type Validator = import("./validators.js").Validator;
/**
 * What to scrub beyond the always-on rules (Python's ScrubOptions). Emails and IP addresses are often wanted for
 * debugging, so both are off unless asked for.
 */
export type ScrubOptions = {
    scrubEmails?: boolean;
    scrubIps?: boolean;
};
/**
 * One replacement, as `_meta` records it: `[rule, kind, start, end]`, offsets (in code points) of the label in the
 * new text.
 */
export type Remark = {
    readonly rule: string;
    readonly kind: string;
    readonly start: number;
    readonly end: number;
};
/**
 * The new text and its remarks (frozen: cached results are shared), or null when nothing was replaced.
 */
export type Scrubbed = {
    readonly text: string;
    readonly remarks: readonly Remark[];
} | null;
export type Compiled = {
    rule: Rule;
    regex: RegExp;
    validator: Validator | null;
    hasGroup: boolean;
    trigger: RegExp | null;
    shared: boolean;
};
/** The value rules active for one combination of options, with their pre-check and result cache. */
export class RuleSet {
    /** @param {Compiled[]} rules */
    constructor(rules: Compiled[]);
    rules: Compiled[];
    unscreened: boolean;
    hints: RegExp | null;
    triggers: RegExp | null;
    mixedTriggers: RegExp | null;
    /** @type {[number, Compiled][]} */
    all: [number, Compiled][];
    unhinted: [number, Compiled][];
    mixed: [number, Compiled][];
    /** @type {Cache<Scrubbed>} */
    cache: Cache<Scrubbed>;
    /** @type {Cache<any>} what event.js derives from a key, per rule set */
    keys: Cache<any>;
    /**
     * @param {string} text
     * @returns {Scrubbed}
     */
    scrub(text: string): Scrubbed;
    /**
     * @param {string} text
     * @returns {Scrubbed}
     */
    scrubUncached(text: string): Scrubbed;
    /**
     * One pass of the rules: the new text, its remarks [rule, start, end] and the replaced spans [start, end, label
     * length]; null when nothing was found.
     * @param {string} text
     * @returns {[string, [string, number, number][], [number, number, number][]] | null}
     */
    pass(text: string): [string, [string, number, number][], [number, number, number][]] | null;
    /**
     * The rules that may match `text`, with their priorities; empty when none would even run its pattern.
     * @param {string} text
     * @param {string} lowered
     * @returns {[number, Compiled][]}
     */
    screen(text: string, lowered: string): [number, Compiled][];
}
