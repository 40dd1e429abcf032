// The redaction rules: the same rules.json the Python engine loads (src/stackwatch/scrub/rules.json; its format is
// described in src/stackwatch/scrub/rules.py and docs/redaction.md). Nothing here is a rule of its own: this module
// reads the file, writes out its {name} placeholders exactly as the Python loader does, and hands the rules on in
// Python's spelling; text.js compiles them with pattern.js.
//
// Where the file is: in the repository, the Python package's file itself; installed from the npm package (where
// that path does not exist), the copy the package carries at its root, which `npm pack` puts there (the prepack
// script; postpack removes it again). The repository's file comes first so that nothing can stand in for the one
// source of the rules there: not a copy left behind by a pack that failed half-way, nor one a pack running beside
// the tests is writing.

import { existsSync, readFileSync } from 'node:fs';

/** @typedef {'key' | 'key_part' | 'value'} RuleKind */

/**
 * One rule, as rules.py's `Rule` has it. `pattern` and `trigger` are in Python's spelling, placeholders expanded.
 * @typedef {{
 *   readonly name: string,
 *   readonly kind: RuleKind,
 *   readonly pattern: string,
 *   readonly label: string,
 *   readonly validator: string | null,
 *   readonly hints: readonly string[],
 *   readonly trigger: string | null,
 *   readonly mixedCase: boolean,
 * }} Rule
 */

const REPOSITORY = new URL('../../../../src/stackwatch/scrub/rules.json', import.meta.url);
const PACKED = new URL('../../rules.json', import.meta.url);

/** Where the rules were read from. */
export const RULES_URL = existsSync(REPOSITORY) ? REPOSITORY : PACKED;

/** @type {any} */
const DATA = readRules(RULES_URL);

/**
 * @param {URL} url
 * @returns {unknown}
 */
function readRules(url) {
  let text;
  try {
    text = readFileSync(url, 'utf8');
  } catch (error) {
    throw new Error(
      `@stackwatch/sdk: the redaction rules are missing (looked for ${REPOSITORY.pathname} and ${PACKED.pathname}): ${error}`,
    );
  }
  const data = JSON.parse(text);
  if (data?.format !== 1) throw new Error(`${url.pathname}: format ${data?.format} is not 1`);
  return data;
}

/**
 * @param {string} ch
 * @returns {string}
 */
function escapeChar(ch) {
  // Only what is special outside a character class, as rules.py's names_pattern does.
  return '\\.^$*+?()[]{}|/'.includes(ch) ? '\\' + ch : ch;
}

/** @typedef {Map<string, Trie>} Trie */

/**
 * A word list as the trie rules.py's `names_pattern` writes (the same text: a test compares them).
 * @param {readonly string[]} words
 * @returns {string}
 */
export function namesPattern(words) {
  /** @type {Trie} */
  const trie = new Map();
  for (const word of words) {
    let node = trie;
    for (const ch of word) {
      let child = node.get(ch);
      if (child === undefined) {
        child = new Map();
        node.set(ch, child);
      }
      node = child;
    }
    node.set('', new Map());
  }
  /**
   * @param {Trie} node
   * @returns {string}
   */
  const emit = (node) => {
    const keys = [...node.keys()].filter((ch) => ch !== '').sort(byCodePoint);
    const branches = keys.map((ch) => escapeChar(ch) + emit(/** @type {Trie} */ (node.get(ch))));
    if (branches.length === 0) return '';
    const body = branches.length === 1 ? branches[0] : '(?:' + branches.join('|') + ')';
    if (node.has('')) {
      return branches.length === 1 && [...body].length === 2 ? body + '?' : `(?:${body})?`;
    }
    return body;
  };
  const first = [...new Set(words.map((word) => [...word][0]))].sort(byCodePoint).join('');
  return [...first].length > 1 ? `(?=[${first}])` + emit(trie) : emit(trie);
}

/**
 * @param {string} a
 * @param {string} b
 */
function byCodePoint(a, b) {
  return /** @type {number} */ (a.codePointAt(0)) - /** @type {number} */ (b.codePointAt(0));
}

/**
 * @param {unknown} value
 * @param {string} where
 * @returns {string}
 */
function patternText(value, where) {
  if (Array.isArray(value) && value.length > 0 && value.every((piece) => typeof piece === 'string')) {
    return value.join('');
  }
  if (typeof value === 'string' && value !== '') return value;
  throw new Error(`rules.json: ${where}: a pattern must be a non-empty string or list of strings`);
}

/** @type {Map<string, string>} */
const PIECES = new Map();
for (const [name, words] of Object.entries(DATA.words)) PIECES.set(name, namesPattern(/** @type {string[]} */ (words)));
for (const [name, fragment] of Object.entries(DATA.fragments)) {
  PIECES.set(name, patternText(/** @type {any} */ (fragment).pattern, `fragment ${name}`));
}

/**
 * @param {string} text
 * @param {string} where
 */
function expand(text, where) {
  return text.replace(/\{([a-z][a-z0-9_]*)\}/g, (_, name) => {
    const piece = PIECES.get(name);
    if (piece === undefined) throw new Error(`rules.json: ${where}: no word list or fragment named '${name}'`);
    return piece;
  });
}

/** The label of key rules (`[Filtered]`). */
export const KEY_LABEL = /** @type {string} */ (DATA.labels.key);
const VALUE_LABEL = /** @type {string} */ (DATA.labels.value);

/**
 * @param {any} entry
 * @returns {Rule}
 */
function rule(entry) {
  const { name, kind } = entry;
  if (typeof name !== 'string' || !['key', 'key_part', 'value'].includes(kind)) {
    throw new Error(`rules.json: rule ${JSON.stringify(entry)}: needs a name and a kind (key, key_part, value)`);
  }
  if (kind !== 'value') {
    return Object.freeze({
      name,
      kind,
      pattern: entry.pattern ?? name,
      label: KEY_LABEL,
      validator: null,
      hints: Object.freeze([]),
      trigger: null,
      mixedCase: false,
    });
  }
  const where = `rule ${name}`;
  return Object.freeze({
    name,
    kind,
    pattern: expand(patternText(entry.pattern, where), where),
    label: VALUE_LABEL.replace('{name}', name),
    validator: entry.validator ?? null,
    hints: Object.freeze([...(entry.hints ?? [])]),
    trigger: entry.trigger === undefined ? null : expand(patternText(entry.trigger, where), `${where} trigger`),
    mixedCase: Boolean(entry.mixed_case),
  });
}

/**
 * @param {string} name
 * @returns {string}
 */
function camelCase(name) {
  return name.replace(/_([a-z])/g, (_, letter) => letter.toUpperCase());
}

/** Every key rule, then every value rule in priority order. */
export const RULES = Object.freeze(DATA.rules.map(rule));

/**
 * Value rules applied only with an option, by the option's name in JavaScript (`scrub_emails` is `scrubEmails`).
 * @type {Readonly<Record<string, readonly Rule[]>>}
 */
export const OPTIONAL_RULES = Object.freeze(
  Object.fromEntries(
    Object.entries(DATA.optional_rules)
      .filter(([option]) => option !== 'about')
      .map(([option, entries]) => [camelCase(option), Object.freeze(/** @type {any[]} */ (entries).map(rule))]),
  ),
);

/** Keys (exact, after lower-casing) that no key rule filters and that end a key rule above them. */
export const ALLOWED_KEYS = /** @type {ReadonlySet<string>} */ (new Set(DATA.allowed_keys.keys));

/** Look-alike letters and the Latin ones they are folded to before key rules are matched. */
export const CONFUSABLES = /** @type {ReadonlyMap<string, string>} */ (
  new Map(
    Object.entries(DATA.confusables)
      .filter(([script]) => script !== 'about')
      .flatMap(([, table]) => Object.entries(/** @type {Record<string, string>} */ (table))),
  )
);

/** Lists under these keys may hold [key, value] pairs. */
export const PAIR_PARENTS = /** @type {ReadonlySet<string>} */ (new Set(DATA.pair_parents.keys));

/** The pairing rule across list items: `{ rule, beside, item }` (see rules.json). */
export const LIST_PAIRING = Object.freeze({
  rule: /** @type {string} */ (DATA.list_pairing.rule),
  beside: /** @type {string} */ (DATA.list_pairing.beside),
  item: /** @type {string} */ (DATA.list_pairing.item),
});

/**
 * The validators' tables.
 * @type {{
 *   card_brands: { brand: string, digits: number, low: number, high: number, lengths: number[] }[],
 *   iban_lengths: Record<string, number>,
 * }}
 */
export const VALIDATOR_DATA = DATA.validator_data;
