/**
 * `key` with look-alike letters folded to ASCII: NFKC, combining marks and format characters removed, Cyrillic
 * and Greek homoglyphs mapped to Latin.
 * @param {string} key
 */
export function foldKey(key: string): string;
/**
 * Name of the key rule that filters values under `key`, or null.
 * @param {string} key
 * @returns {string | null}
 */
export function keyRule(key: string): string | null;
/**
 * Return a scrubbed copy of `event` (the input is never changed), with every replacement in `_meta`.
 * @param {Record<string, any>} event
 * @param {ScrubOptions} [options]
 * @returns {Record<string, any>}
 */
export function scrubEvent(event: Record<string, any>, options?: ScrubOptions): Record<string, any>;
/** @typedef {import('./text.js').ScrubOptions} ScrubOptions */
/** @typedef {import('./text.js').RuleSet} RuleSet */
/** @typedef {import('./text.js').Scrubbed} Scrubbed */
/** What a value under a key rule becomes. */
export const FILTERED: string;
/**
 * What the walk needs to know of a key: the policy of the key as it will be stored, and the scrubbed key when the
 * value rules replaced part of it.
 */
export type KeyInfo = [string | null, Scrubbed];
export type Link = [any, string | number, number] | null;
export type Found = [Link, string | number, number, Record<string, any>];
export type ScrubOptions = import("./text.js").ScrubOptions;
export type RuleSet = import("./text.js").RuleSet;
export type Scrubbed = import("./text.js").Scrubbed;
