// Scrubbing of a single string with the value rules: the port of src/stackwatch/scrub/text.py, arranged the same
// way around proving quickly that a string holds no secret (text.py's docstring explains the pre-checks).
//
// Offsets: the engine works in UTF-16 units, as JavaScript strings do, and reports remarks in code points, as
// Python (and so `_meta`) counts them; the two differ only in a text with characters outside the BMP.

import { OPTIONAL_RULES, RULES } from './rules.js';
import { toJavaScript } from './pattern.js';
import { VALIDATORS, base64Secret } from './validators.js';

/** @typedef {import('./rules.js').Rule} Rule */
/** @typedef {import('./validators.js').Validator} Validator */

/**
 * What to scrub beyond the always-on rules (Python's ScrubOptions). Emails and IP addresses are often wanted for
 * debugging, so both are off unless asked for.
 * @typedef {{ scrubEmails?: boolean, scrubIps?: boolean }} ScrubOptions
 */

/**
 * One replacement, as `_meta` records it: `[rule, kind, start, end]`, offsets (in code points) of the label in the
 * new text.
 * @typedef {{ readonly rule: string, readonly kind: string, readonly start: number, readonly end: number }} Remark
 */

/**
 * The new text and its remarks (frozen: cached results are shared), or null when nothing was replaced.
 * @typedef {{ readonly text: string, readonly remarks: readonly Remark[] } | null} Scrubbed
 */

// Every rule needs at least a few characters (counted in code points, as Python does); shorter strings skip all
// regex work.
const MIN_CANDIDATE_LEN = 6;
// Results of strings up to CACHE_MAX_LEN units are cached, at most CACHE_SIZE of them per combination of options.
const CACHE_SIZE = 4096;
const CACHE_MAX_LEN = 256;
// Passes over a string at most (see scrubUncached): a second one rarely finds more, a third never has in the
// property tests.
const MAX_PASSES = 3;
const SURROGATE = /[\uD800-\uDFFF]/;
const SYNTAX_CHARS = '^$\\.*+?()[]{}|/';

/**
 * A bounded map that forgets what was not used for a while: two generations, the older one dropped when the
 * newer one is full. Cheaper than a strict LRU on every hit, and as good for text that repeats event to event.
 * @template V
 */
export class Cache {
  /** @param {number} size */
  constructor(size) {
    this.half = Math.max(1, size >> 1);
    /** @type {Map<string, V>} */
    this.young = new Map();
    /** @type {Map<string, V>} */
    this.old = new Map();
  }

  /**
   * @param {string} key
   * @returns {V | undefined}
   */
  get(key) {
    const found = this.young.get(key);
    if (found !== undefined) return found;
    const older = this.old.get(key);
    if (older !== undefined) this.set(key, older);
    return older;
  }

  /**
   * @param {string} key
   * @param {V} value
   */
  set(key, value) {
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  clear() {
    this.young = new Map();
    this.old = new Map();
  }
}

/**
 * @typedef {{
 *   rule: Rule,
 *   regex: RegExp,
 *   validator: Validator | null,
 *   hasGroup: boolean,
 *   trigger: RegExp | null,
 *   shared: boolean,
 * }} Compiled
 */

/** @type {Map<string, RegExp>} */
const SEARCHES = new Map();

/**
 * The global RegExp searching for `pattern` (one object per pattern, so that rules sharing it share its matches).
 * @param {string} pattern
 */
function search(pattern) {
  let regex = SEARCHES.get(pattern);
  if (regex === undefined) {
    const { source, flags } = toJavaScript(pattern);
    // d: the offsets of the group v; only for patterns that have one (it costs a little on every match).
    regex = new RegExp(source, flags + 'g' + (/\(\?P<v>/.test(pattern) ? 'd' : ''));
    SEARCHES.set(pattern, regex);
  }
  return regex;
}

/**
 * @param {string} pattern
 * @returns {RegExp}
 */
function compileOnce(pattern) {
  const { source, flags } = toJavaScript(pattern);
  return new RegExp(source, flags);
}

/** @type {Record<string, Validator>} */
const ALL_VALIDATORS = {
  ...VALIDATORS,
  base64_secret: base64Secret((text) => ruleSet(0).scrub(text) !== null),
};

/**
 * @param {readonly Rule[]} rules
 * @returns {Compiled[]}
 */
function compile(rules) {
  return rules.map((rule) => {
    const validator = rule.validator === null ? null : ALL_VALIDATORS[rule.validator];
    if (validator === undefined) throw new Error(`rules.json: rule ${rule.name}: no validator ${rule.validator}`);
    return {
      rule,
      regex: search(rule.pattern),
      validator,
      hasGroup: /\(\?P<v>/.test(rule.pattern),
      trigger: rule.trigger === null ? null : compileOnce(rule.trigger),
      shared: rules.filter((other) => other.pattern === rule.pattern).length > 1,
    };
  });
}

/**
 * A regex that matches where any of `literals` starts, written as a trie (text.py's _any_literal).
 * @param {Iterable<string>} literals
 */
function anyLiteral(literals) {
  /** @typedef {Map<string, Trie>} Trie */
  /** @type {Trie} */
  const trie = new Map();
  for (const literal of literals) {
    let node = trie;
    for (const ch of literal) {
      let child = node.get(ch);
      if (child === undefined) node.set(ch, (child = new Map()));
      node = child;
    }
    node.set('', new Map());
  }
  /** @param {Trie} node @returns {string} */
  const emit = (node) => {
    if (node.has('')) return '';
    const parts = [...node.keys()]
      .sort()
      .map((ch) => (SYNTAX_CHARS.includes(ch) ? '\\' + ch : ch) + emit(/** @type {Trie} */ (node.get(ch))));
    return parts.length === 1 ? parts[0] : '(?:' + parts.join('|') + ')';
  };
  return new RegExp(emit(trie), 'u');
}

/**
 * One regex for several triggers (each once), or null.
 * @param {(string | null)[]} triggers
 */
function joined(triggers) {
  const unique = [...new Set(triggers.filter((t) => t !== null))];
  if (unique.length === 0) return null;
  return new RegExp(unique.map((t) => `(?:${toJavaScript(/** @type {string} */ (t)).source})`).join('|'), 'u');
}

/**
 * Whether `text` may hold both an upper- and a lower-case letter.
 * @param {string} text
 * @param {string} lowered
 */
function mixedCase(text, lowered) {
  return text !== lowered && text.toUpperCase() !== text;
}

/**
 * The length of `text` in code points.
 * @param {string} text
 */
export function codePoints(text) {
  if (!SURROGATE.test(text)) return text.length;
  let n = 0;
  for (let i = 0; i < text.length; i += isPairAt(text, i) ? 2 : 1) n += 1;
  return n;
}

/**
 * Whether a surrogate pair (one code point of two units) starts at `i`.
 * @param {string} text
 * @param {number} i
 */
function isPairAt(text, i) {
  const c = text.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
}

/**
 * Remarks with UTF-16 offsets in `text` as remarks with code point offsets (sorted by start, as they are).
 * @param {string} text
 * @param {[string, number, number][]} remarks
 * @returns {readonly Remark[]}
 */
function toRemarks(text, remarks) {
  const plain = !SURROGATE.test(text);
  let unit = 0;
  let point = 0;
  /** @param {number} offset */
  const at = (offset) => {
    if (plain) return offset;
    while (unit < offset) {
      unit += isPairAt(text, unit) ? 2 : 1;
      point += 1;
    }
    return point;
  };
  return Object.freeze(
    remarks.map(([rule, start, end]) => {
      const from = at(start);
      return Object.freeze({ rule, kind: 's', start: from, end: from + (end - start) });
    }),
  );
}

/**
 * Remarks of a text moved to where they are after the replacements `spans` (dropped if one covers them).
 * @param {[string, number, number][]} remarks
 * @param {[number, number, number][]} spans
 * @returns {[string, number, number][]}
 */
function shifted(remarks, spans) {
  /** @type {[string, number, number][]} */
  const out = [];
  for (const [rule, start, end] of remarks) {
    let shift = 0;
    let covered = false;
    for (const [from, to, labelLength] of spans) {
      if (to <= start) shift += labelLength - (to - from);
      else if (from >= end) break;
      else {
        covered = true; // the label itself was replaced
        break;
      }
    }
    if (!covered) out.push([rule, start + shift, end + shift]);
  }
  return out;
}

/** The value rules active for one combination of options, with their pre-check and result cache. */
class RuleSet {
  /** @param {Compiled[]} rules */
  constructor(rules) {
    this.rules = rules;
    this.unscreened = rules.some((c) => c.rule.hints.length === 0 && c.rule.trigger === null);
    const all = new Set(rules.flatMap((c) => c.rule.hints));
    // For "is any hint present" a hint that contains another one ("api_key" holds "key") adds nothing.
    const literals = [...all].filter((h) => ![...all].some((other) => other !== h && h.includes(other)));
    this.hints = literals.length ? anyLiteral(literals) : null;
    const unhinted = rules.filter((c) => c.rule.hints.length === 0);
    this.triggers = joined(unhinted.filter((c) => !c.rule.mixedCase).map((c) => c.rule.trigger));
    this.mixedTriggers = joined(unhinted.filter((c) => c.rule.mixedCase).map((c) => c.rule.trigger));
    /** @type {[number, Compiled][]} */
    this.all = rules.map((c, priority) => [priority, c]);
    this.unhinted = this.all.filter(([, c]) => c.rule.hints.length === 0);
    this.mixed = this.unhinted.filter(([, c]) => c.rule.mixedCase);
    /** @type {Cache<Scrubbed>} */
    this.cache = new Cache(CACHE_SIZE);
    /** @type {Cache<any>} what event.js derives from a key, per rule set */
    this.keys = new Cache(CACHE_SIZE);
  }

  /**
   * @param {string} text
   * @returns {Scrubbed}
   */
  scrub(text) {
    const size = text.length;
    if (size < MIN_CANDIDATE_LEN || (size < 2 * MIN_CANDIDATE_LEN && codePoints(text) < MIN_CANDIDATE_LEN)) {
      return null;
    }
    if (size > CACHE_MAX_LEN) return this.scrubUncached(text);
    const found = this.cache.get(text);
    if (found !== undefined) return found;
    const result = this.scrubUncached(text);
    this.cache.set(text, result);
    return result;
  }

  /**
   * @param {string} text
   * @returns {Scrubbed}
   */
  scrubUncached(text) {
    const first = this.pass(text);
    if (first === null) return null;
    // The result is looked at again until a pass finds nothing, so that it scrubs to itself (text.py's
    // scrub_uncached says why one pass is not always enough).
    let [newText, remarks] = first;
    for (let n = 1; n < MAX_PASSES; n += 1) {
      const again = this.pass(newText);
      if (again === null) break;
      const [text2, remarks2, spans] = again;
      newText = text2;
      remarks = shifted(remarks, spans).concat(remarks2);
      remarks.sort((a, b) => a[1] - b[1]);
    }
    return Object.freeze({ text: newText, remarks: toRemarks(newText, remarks) });
  }

  /**
   * One pass of the rules: the new text, its remarks [rule, start, end] and the replaced spans [start, end, label
   * length]; null when nothing was found.
   * @param {string} text
   * @returns {[string, [string, number, number][], [number, number, number][]] | null}
   */
  pass(text) {
    const lowered = text.toLowerCase();
    const rules = this.screen(text, lowered);
    if (rules.length === 0) return null;
    const found = candidates(text, lowered, rules);
    if (found.length === 0) return null;
    found.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    let out = '';
    /** @type {[string, number, number][]} */
    const remarks = [];
    /** @type {[number, number, number][]} */
    const spans = [];
    let cursor = 0;
    for (const [start, , end, name, label] of found) {
      // A candidate that overlaps a replacement already made (earlier start, or same start and higher priority).
      if (start < cursor) continue;
      out += text.slice(cursor, start);
      remarks.push([name, out.length, out.length + label.length]);
      out += label;
      spans.push([start, end, label.length]);
      cursor = end;
    }
    return [out + text.slice(cursor), remarks, spans];
  }

  /**
   * The rules that may match `text`, with their priorities; empty when none would even run its pattern.
   * @param {string} text
   * @param {string} lowered
   * @returns {[number, Compiled][]}
   */
  screen(text, lowered) {
    if (this.unscreened || (this.hints !== null && this.hints.test(lowered))) return this.all;
    if (this.triggers !== null && this.triggers.test(text)) return this.unhinted;
    if (this.mixedTriggers !== null && mixedCase(text, lowered) && this.mixedTriggers.test(text)) return this.mixed;
    return [];
  }
}

/**
 * Every match the rules keep: [start, priority, end, rule name, label] (UTF-16 offsets).
 * @param {string} text
 * @param {string} lowered
 * @param {[number, Compiled][]} rules
 * @returns {[number, number, number, string, string][]}
 */
function candidates(text, lowered, rules) {
  /** @type {[number, number, number, string, string][]} */
  const found = [];
  /** @type {boolean | null} */
  let mixed = null;
  /** @type {Map<RegExp, [number, number][]> | null} */
  let shared = null;
  for (const [priority, c] of rules) {
    const { hints } = c.rule;
    if (hints.length !== 0 && !hints.some((hint) => lowered.includes(hint))) continue;
    if (c.rule.mixedCase) {
      if (mixed === null) mixed = mixedCase(text, lowered);
      if (!mixed) continue;
    }
    if (c.trigger !== null && !c.trigger.test(text)) continue;
    let spans;
    if (c.shared) {
      shared ??= new Map();
      spans = shared.get(c.regex);
      if (spans === undefined) shared.set(c.regex, (spans = matches(c, text)));
    } else {
      spans = matches(c, text);
    }
    for (const [start, whole] of spans) {
      let end = whole;
      if (c.rule.mixedCase) {
        const candidate = text.slice(start, end);
        if (candidate.toLowerCase() === candidate || candidate.toUpperCase() === candidate) continue;
      }
      if (c.validator !== null) {
        const length = c.validator(text.slice(start, end));
        if (length === null) continue;
        end = start + length;
      }
      found.push([start, priority, end, c.rule.name, c.rule.label]);
    }
  }
  return found;
}

/**
 * The spans [start, end] of the matches of a rule's pattern (its group v, or the whole match), collected before
 * any validator runs: a validator may scrub text itself with the same RegExp objects.
 * @param {Compiled} c
 * @param {string} text
 * @returns {[number, number][]}
 */
function matches(c, text) {
  /** @type {[number, number][]} */
  const spans = [];
  const { regex } = c;
  regex.lastIndex = 0;
  let m;
  while ((m = regex.exec(text)) !== null) {
    const whole = m[0].length;
    if (whole === 0) regex.lastIndex += isPairAt(text, m.index) ? 2 : 1;
    if (c.hasGroup) {
      const span = /** @type {any} */ (m).indices?.groups?.v;
      if (span !== undefined && span[0] !== span[1]) spans.push([span[0], span[1]]);
    } else if (whole !== 0) {
      spans.push([m.index, m.index + whole]);
    }
  }
  return spans;
}

const OPTION_NAMES = Object.keys(OPTIONAL_RULES);
const BASE = compile(RULES.filter((/** @type {Rule} */ r) => r.kind === 'value'));
/** @type {(RuleSet | undefined)[]} */
const RULE_SETS = [];

/**
 * The rule set for a combination of options, as a bit mask over OPTION_NAMES.
 * @param {number} mask
 */
function ruleSet(mask) {
  let set = RULE_SETS[mask];
  if (set === undefined) {
    const rules = RULES.filter((/** @type {Rule} */ r) => r.kind === 'value').concat(
      ...OPTION_NAMES.map((name, bit) => (mask & (1 << bit) ? OPTIONAL_RULES[name] : [])),
    );
    set = RULE_SETS[mask] = new RuleSet(mask === 0 ? BASE : compile(rules));
  }
  return set;
}

/**
 * @param {ScrubOptions | undefined} options
 */
function maskOf(options) {
  if (options == null) return 0;
  let mask = 0;
  for (let bit = 0; bit < OPTION_NAMES.length; bit += 1) {
    if (/** @type {Record<string, unknown>} */ (options)[OPTION_NAMES[bit]]) mask |= 1 << bit;
  }
  return mask;
}

/**
 * The rule set that scrubs strings under `options` (its `scrub(text)` gives a Scrubbed).
 * @param {ScrubOptions} [options]
 */
export function stringScrubber(options) {
  return ruleSet(maskOf(options));
}

/**
 * Replace every secret-looking part of `text`; return the new text and one remark per replacement.
 * @param {string} text
 * @param {ScrubOptions} [options]
 * @returns {[string, Remark[]]}
 */
export function scrubText(text, options) {
  if (typeof text !== 'string') throw new TypeError(`scrubText: text must be a string, not ${typeof text}`);
  const result = stringScrubber(options).scrub(text);
  return result === null ? [text, []] : [result.text, [...result.remarks]];
}

/** Forget every cached result (for measuring the cost of strings never seen before). */
export function clearCache() {
  for (const set of RULE_SETS) {
    set?.cache.clear();
    set?.keys.clear();
  }
}

export { RuleSet };
