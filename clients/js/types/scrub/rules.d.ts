/** @typedef {Map<string, Trie>} Trie */
/**
 * A word list as the trie rules.py's `names_pattern` writes (the same text: a test compares them).
 * @param {readonly string[]} words
 * @returns {string}
 */
export function namesPattern(words: readonly string[]): string;
/** Where the rules were read from. */
export const RULES_URL: URL;
/** The label of key rules (`[Filtered]`). */
export const KEY_LABEL: string;
/** Every key rule, then every value rule in priority order. */
export const RULES: any;
/**
 * Value rules applied only with an option, by the option's name in JavaScript (`scrub_emails` is `scrubEmails`).
 * @type {Readonly<Record<string, readonly Rule[]>>}
 */
export const OPTIONAL_RULES: Readonly<Record<string, readonly Rule[]>>;
/** Keys (exact, after lower-casing) that no key rule filters and that end a key rule above them. */
export const ALLOWED_KEYS: ReadonlySet<string>;
/** Look-alike letters and the Latin ones they are folded to before key rules are matched. */
export const CONFUSABLES: ReadonlyMap<string, string>;
/** Lists under these keys may hold [key, value] pairs. */
export const PAIR_PARENTS: ReadonlySet<string>;
/** The pairing rule across list items: `{ rule, beside, item }` (see rules.json). */
export const LIST_PAIRING: Readonly<{
    rule: string;
    beside: string;
    item: string;
}>;
/**
 * The validators' tables.
 * @type {{
 *   card_brands: { brand: string, digits: number, low: number, high: number, lengths: number[] }[],
 *   iban_lengths: Record<string, number>,
 * }}
 */
export const VALIDATOR_DATA: {
    card_brands: {
        brand: string;
        digits: number;
        low: number;
        high: number;
        lengths: number[];
    }[];
    iban_lengths: Record<string, number>;
};
export type Trie = Map<string, Trie>;
export type RuleKind = "key" | "key_part" | "value";
/**
 * One rule, as rules.py's `Rule` has it. `pattern` and `trigger` are in Python's spelling, placeholders expanded.
 */
export type Rule = {
    readonly name: string;
    readonly kind: RuleKind;
    readonly pattern: string;
    readonly label: string;
    readonly validator: string | null;
    readonly hints: readonly string[];
    readonly trigger: string | null;
    readonly mixedCase: boolean;
};
