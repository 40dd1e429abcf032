// The patterns of rules.json are written in Python's spelling (the Python engine compiles them as they are); this
// module rewrites one into a JavaScript RegExp (with the `u` flag) that matches exactly the same text.
//
// The rewrites are mechanical (docs/redaction.md, "The spelling of patterns"):
//   (?P<name>...) -> (?<name>...)        (?P=name) -> \k<name>        \Z -> $        \A -> ^
//   a leading (?i) / (?s)               -> the flags i / s
//   \b, \B        -> look-arounds on Python's word characters (Unicode letters and digits and _; JavaScript's \b
//                    only knows ASCII ones)
//   \w, \W        -> [\p{L}\p{N}_], [^\p{L}\p{N}_]
//   \d, \D        -> \p{Nd}, \P{Nd} (Python's \d is every decimal digit, JavaScript's only 0-9)
//   \s, \S        -> Python's set of spaces (it has U+001C-U+001F and U+0085, JavaScript's has U+FEFF instead)
//   .             -> [^\n] without the s flag (JavaScript's dot also stops at \r, U+2028 and U+2029)
//   $             -> (?=\n?$) (Python's $ also matches before a final newline)
//   under (?i)    -> i and I also match ı and İ, as Python's case folding has them (JavaScript's has only ſ and K,
//                    which Python's has too)
//   {, } and ] where Python reads them as literals -> escaped; {,n} -> {0,n}
// Anything outside the subset both engines read alike is an error here, with the pattern in the message, rather
// than a silent difference: possessive quantifiers, atomic groups, inline flags after the start, numbered
// backreferences, \S/\D/\W inside a class, a negated class with letters under (?i).

const WORD = '\\p{L}\\p{N}_';
const BOUNDARY = `(?:(?<=[${WORD}])(?![${WORD}])|(?<![${WORD}])(?=[${WORD}]))`;
const NOT_BOUNDARY = `(?:(?<=[${WORD}])(?=[${WORD}])|(?<![${WORD}])(?![${WORD}]))`;
// Python's \s: what str.isspace() is true for (checked against Python's own set by a test).
const SPACES = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const DOTLESS = 'ıİ'; // what Python's (?i) also matches for i and I
const SYNTAX = new Set('^$\\.*+?()[]{}|/');
const SIMPLE_ESCAPES = new Set(['n', 't', 'r', 'f', 'v']);

export class PatternError extends Error {}

/**
 * A pattern in Python's spelling as JavaScript source and flags (always with `u`).
 * @param {string} pattern
 * @returns {{ source: string, flags: string }}
 */
export function toJavaScript(pattern) {
  let flags = 'u';
  let body = pattern;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(body);
  if (lead) {
    for (const flag of lead[1]) {
      if (flag !== 'i' && flag !== 's') throw new PatternError(`inline flag ${flag} is not supported: ${pattern}`);
      if (!flags.includes(flag)) flags += flag;
    }
    body = body.slice(lead[0].length);
  }
  const translator = new Translator(Array.from(body), flags.includes('i'), flags.includes('s'), pattern);
  return { source: translator.run(), flags };
}

class Translator {
  /**
   * @param {string[]} chars
   * @param {boolean} ignoreCase
   * @param {boolean} dotAll
   * @param {string} pattern
   */
  constructor(chars, ignoreCase, dotAll, pattern) {
    this.chars = chars;
    this.ignoreCase = ignoreCase;
    this.dotAll = dotAll;
    this.pattern = pattern;
    this.i = 0;
  }

  /** @param {string} why */
  fail(why) {
    return new PatternError(`${why} at ${this.i} of ${this.pattern}`);
  }

  /** @param {number} [ahead] */
  peek(ahead = 0) {
    return this.chars[this.i + ahead];
  }

  run() {
    let out = '';
    while (this.i < this.chars.length) {
      const ch = this.chars[this.i];
      if (ch === '\\') out += this.escape();
      else if (ch === '[') out += this.charClass();
      else if (ch === '(') out += this.group();
      else if (ch === '{') out += this.brace();
      else if ('*+?'.includes(ch)) out += this.quantifier(ch);
      else {
        this.i += 1;
        if (ch === '.') out += this.dotAll ? '.' : '[^\\n]';
        else if (ch === '$') out += '(?=\\n?$)';
        else if (ch === '}' || ch === ']') out += '\\' + ch;
        else if (this.ignoreCase && (ch === 'i' || ch === 'I')) out += `[iI${DOTLESS}]`;
        else out += ch;
      }
    }
    return out;
  }

  /** @param {string} ch */
  quantifier(ch) {
    this.i += 1;
    let out = ch;
    if (this.peek() === '?') {
      out += '?';
      this.i += 1;
    } else if (this.peek() === '+') {
      throw this.fail('possessive quantifiers are not supported');
    }
    return out;
  }

  brace() {
    const rest = this.chars.slice(this.i, this.i + 24).join('');
    const match = /^\{(\d*)(?:(,)(\d*))?\}/.exec(rest);
    if (!match || (match[1] === '' && match[2] === undefined)) {
      this.i += 1;
      return '\\{'; // Python reads a brace that opens no repetition as itself
    }
    this.i += match[0].length;
    const low = match[1] === '' ? '0' : match[1];
    const out = match[2] === undefined ? `{${low}}` : `{${low},${match[3]}}`;
    if (this.peek() === '?') {
      this.i += 1;
      return out + '?';
    }
    if (this.peek() === '+') throw this.fail('possessive quantifiers are not supported');
    return out;
  }

  group() {
    this.i += 1;
    if (this.peek() !== '?') return '(';
    const rest = this.chars.slice(this.i, this.i + 40).join('');
    let match;
    if ((match = /^\?P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest))) {
      this.i += match[0].length;
      return `(?<${match[1]}>`;
    }
    if ((match = /^\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest))) {
      this.i += match[0].length;
      return `\\k<${match[1]}>`;
    }
    if ((match = /^\?(?::|=|!|<=|<!)/.exec(rest))) {
      this.i += match[0].length;
      return '(' + match[0];
    }
    throw this.fail('only (?:, (?=, (?!, (?<=, (?<!, (?P<name> and (?P=name) groups are supported');
  }

  escape() {
    const ch = this.peek(1);
    if (ch === undefined) throw this.fail('a pattern cannot end with a backslash');
    this.i += 2;
    switch (ch) {
      case 'b':
        return BOUNDARY;
      case 'B':
        return NOT_BOUNDARY;
      case 'd':
        return '\\p{Nd}';
      case 'D':
        return '\\P{Nd}';
      case 's':
        return `[${SPACES}]`;
      case 'S':
        return `[^${SPACES}]`;
      case 'w':
        return `[${WORD}]`;
      case 'W':
        return `[^${WORD}]`;
      case 'Z':
        return '$';
      case 'A':
        return '^';
      default: {
        const [literal] = this.literalEscape(ch);
        if (this.ignoreCase && (literal === 'i' || literal === 'I')) return `[iI${DOTLESS}]`;
        return literal.length === 1 ? this.quote(literal) : literal;
      }
    }
  }

  /**
   * The escape \<ch> (already consumed) of a single character: its JavaScript spelling and its code point.
   * @param {string} ch
   * @returns {[string, number]}
   */
  literalEscape(ch) {
    if (ch === 'x' || ch === 'u' || ch === 'U') {
      const width = ch === 'x' ? 2 : ch === 'u' ? 4 : 8;
      const hex = this.chars.slice(this.i, this.i + width).join('');
      if (!new RegExp(`^[0-9A-Fa-f]{${width}}$`).test(hex)) throw this.fail(`\\${ch} needs ${width} hex digits`);
      this.i += width;
      const code = parseInt(hex, 16);
      return [`\\u{${code.toString(16)}}`, code];
    }
    if (SIMPLE_ESCAPES.has(ch)) {
      return ['\\' + ch, { n: 10, t: 9, r: 13, f: 12, v: 11 }[/** @type {'n'} */ (ch)]];
    }
    if (/[\p{L}\p{N}]/u.test(ch)) throw this.fail(`the escape \\${ch} is not supported`);
    return [ch, /** @type {number} */ (ch.codePointAt(0))];
  }

  /**
   * A literal character outside a class, escaped where JavaScript needs it.
   * @param {string} ch
   */
  quote(ch) {
    return SYNTAX.has(ch) ? '\\' + ch : ch;
  }

  charClass() {
    this.i += 1;
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.i += 1;
    }
    /** @type {string[]} */
    const items = [];
    let coversI = false;
    let hasLetter = false;
    let first = true;
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw this.fail('unterminated character class');
      if (ch === ']' && !first) {
        this.i += 1;
        break;
      }
      first = false;
      const low = this.classAtom();
      if (low.set !== undefined) {
        items.push(low.set);
        continue;
      }
      let high = low;
      if (this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.i += 1;
        const upper = this.classAtom();
        if (upper.set !== undefined) throw this.fail('a range cannot end in a class escape');
        high = upper;
        if (high.code < low.code) throw this.fail('bad character range');
        items.push(`${low.text}-${high.text}`);
      } else {
        items.push(low.text);
      }
      coversI ||= covers(low.code, high.code, 0x49) || covers(low.code, high.code, 0x69);
      hasLetter ||= hasCased(low.code, high.code);
    }
    if (this.ignoreCase && negated && hasLetter) {
      throw this.fail('a negated class with letters under (?i) is not supported');
    }
    if (this.ignoreCase && !negated && coversI) items.push(DOTLESS);
    return `[${negated ? '^' : ''}${items.join('')}]`;
  }

  /** @returns {{ text: string, code: number, set?: undefined } | { set: string, text?: undefined, code?: undefined }} */
  classAtom() {
    const ch = /** @type {string} */ (this.peek());
    if (ch !== '\\') {
      this.i += 1;
      return { text: /[\\\]\[^-]/.test(ch) ? '\\' + ch : ch, code: /** @type {number} */ (ch.codePointAt(0)) };
    }
    const next = this.peek(1);
    if (next === undefined) throw this.fail('a pattern cannot end with a backslash');
    this.i += 2;
    if (next === 'd') return { set: '\\p{Nd}' };
    if (next === 's') return { set: SPACES };
    if (next === 'w') return { set: WORD };
    if ('DSWbBZA'.includes(next)) throw this.fail(`\\${next} inside a class is not supported`);
    const [literal, code] = this.literalEscape(next);
    if (literal.length > 1) return { text: literal, code };
    return { text: /[\\\]\[^-]/.test(literal) ? '\\' + literal : literal, code };
  }
}

/**
 * @param {number} low
 * @param {number} high
 * @param {number} code
 */
function covers(low, high, code) {
  return low <= code && code <= high;
}

/**
 * Whether the range holds a letter that has another case (ASCII, or anything past it, to be safe).
 * @param {number} low
 * @param {number} high
 */
function hasCased(low, high) {
  return high >= 0x80 || (low <= 0x5a && high >= 0x41) || (low <= 0x7a && high >= 0x61);
}
