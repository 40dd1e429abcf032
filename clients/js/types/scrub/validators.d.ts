/**
 * Python's luhn_ok, which counts a digit as its code point minus 48 (so only ASCII digits check out).
 * @param {number[]} digits code points
 */
export function luhnOk(digits: number[]): boolean;
/**
 * The mod-97 check of an IBAN without spaces (letters count 10-35, digits of any script their value).
 * @param {number[]} compact code points
 */
export function ibanOk(compact: number[]): boolean;
/**
 * The text `candidate` is the base64 (standard or URL-safe, padding optional) of, or null: valid UTF-8 of
 * printable characters and whitespace only.
 * @param {string} candidate
 * @returns {string | null}
 */
export function decodedText(candidate: string): string | null;
/**
 * A validator for base64 that decodes to text in which `findsSecret` (the value rules) finds a secret.
 * @param {(text: string) => boolean} findsSecret
 * @returns {Validator}
 */
export function base64Secret(findsSecret: (text: string) => boolean): Validator;
/**
 * How random `core` reads: about 0.6 for a random token, below 0 for identifiers and paths.
 * @param {string} core
 */
export function tokenScore(core: string): number;
export function opaqueToken(candidate: string): number | null;
/** @type {Readonly<Record<string, Validator>>} */
export const VALIDATORS: Readonly<Record<string, Validator>>;
export type Validator = (candidate: string) => number | null;
