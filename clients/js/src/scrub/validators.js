// Validators that confirm (or trim) a value-rule candidate: the port of src/stackwatch/scrub/validators.py, which
// documents each one. A validator gets the candidate text and returns how many leading UTF-16 units of it are the
// secret (Python counts characters; both are the same prefix), or null to reject it.
//
// What Python's str methods mean is kept exactly, down to its oddities: a candidate can hold any Unicode decimal
// digit (Python's \d), and Python's Luhn check subtracts 48 from each one's code point.

import { VALIDATOR_DATA } from './rules.js';

/** @typedef {(candidate: string) => number | null} Validator */

const TOKEN_PUNCT = /[0-9\-._~+/=]/;
const TEXT_LEADS = new Set('CDIJKLMNOPQRSTUVWXYZabcdef');
const DECIMAL = /\p{Nd}/u;
const NOT_ASCII = /[^\x00-\x7f]/;
// What str.isprintable() is false for (categories C*, Zl, Zp, Zs except the space), less the three allowed controls.
const UNPRINTABLE = /(?![ \t\n\r])[\p{C}\p{Zl}\p{Zp}\p{Zs}]/u;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const CARD_BRANDS = VALIDATOR_DATA.card_brands.map((b) => ({ ...b, lengths: new Set(b.lengths) }));
const IBAN_LENGTHS = new Map(Object.entries(VALIDATOR_DATA.iban_lengths));

/**
 * The value of a decimal digit of any script (Python's int() reads them all). Unicode encodes each script's
 * digits as one run of 0-9, and runs of one block follow each other, so the value is the offset in the block mod 10.
 * @param {number} code
 */
function digitValue(code) {
  if (code >= 48 && code <= 57) return code - 48;
  let start = code;
  while (start > 0 && DECIMAL.test(String.fromCodePoint(start - 1))) start -= 1;
  return (code - start) % 10;
}

/**
 * Python's luhn_ok, which counts a digit as its code point minus 48 (so only ASCII digits check out).
 * @param {number[]} digits code points
 */
export function luhnOk(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = digits[digits.length - 1 - i] - 48;
    if (i % 2) d = d > 4 ? d * 2 - 9 : d * 2;
    total += d;
  }
  return total % 10 === 0;
}

/**
 * The mod-97 check of an IBAN without spaces (letters count 10-35, digits of any script their value).
 * @param {number[]} compact code points
 */
export function ibanOk(compact) {
  const rearranged = [...compact.slice(4), ...compact.slice(0, 4)];
  let rest = 0;
  for (const code of rearranged) {
    let value;
    if (code >= 65 && code <= 90) value = code - 55;
    else if (code >= 97 && code <= 122) value = code - 87;
    else if (DECIMAL.test(String.fromCodePoint(code))) value = digitValue(code);
    else return false;
    for (const ch of String(value)) rest = (rest * 10 + (ch.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

/** @type {Validator} */
function card(candidate) {
  /** @type {number[]} */
  const digits = [];
  const separators = new Set();
  for (const ch of candidate) {
    if (ch === ' ' || ch === '.' || ch === '-') separators.add(ch);
    else digits.push(/** @type {number} */ (ch.codePointAt(0)));
  }
  if (separators.size > 1 || digits.length < 13 || digits.length > 19) return null;
  if (separators.has('.')) {
    // Dots only as cards are printed, in groups of four (4111.1111.1111.1111), never a decimal number.
    const groups = candidate.split('.').map((g) => [...g].length);
    const last = groups[groups.length - 1];
    if (groups.length < 4 || groups.slice(0, -1).some((n) => n !== 4) || last < 1 || last > 4) return null;
  }
  for (const { digits: width, low, high, lengths } of CARD_BRANDS) {
    let prefix = 0;
    for (const code of digits.slice(0, width)) prefix = prefix * 10 + digitValue(code);
    if (low <= prefix && prefix <= high && lengths.has(digits.length)) {
      return luhnOk(digits) ? candidate.length : null;
    }
  }
  return null;
}

/** @type {Validator} */
function iban(candidate) {
  const expected = IBAN_LENGTHS.get(candidate.slice(0, 2));
  const chars = [...candidate];
  let compactLength = 0;
  let end = -1;
  for (let i = 0; i < chars.length; i += 1) {
    if (chars[i] !== ' ') compactLength += 1;
    if (compactLength === expected) {
      // Trim an over-match, but only at a boundary ("DE89 ... 00 EUR", not in the middle of a token).
      if (i + 1 !== chars.length && chars[i + 1] !== ' ') return null;
      end = i + 1;
      break;
    }
  }
  if (end === -1) {
    end = chars.length;
    if (expected !== undefined || compactLength < 15 || compactLength > 34) return null;
  }
  const kept = chars.slice(0, end);
  const compact = kept.filter((ch) => ch !== ' ').map((ch) => /** @type {number} */ (ch.codePointAt(0)));
  return ibanOk(compact) ? kept.join('').length : null;
}

/** @type {Validator} */
function tokenish(candidate) {
  // "Bearer authentication" is prose; real tokens carry digits or punctuation.
  return TOKEN_PUNCT.test(candidate) ? candidate.length : null;
}

const HEX_PART = /^[0-9a-fA-F]{1,4}$/;

/**
 * Python's ipaddress.IPv6Address for what the ipv6 rule can match (hex digits and colons only).
 * @param {string} text
 */
function ipv6Ok(text) {
  const parts = text.split(':');
  if (parts.length < 3 || parts.length > 9) return false;
  let skip = -1;
  for (let i = 1; i < parts.length - 1; i += 1) {
    if (parts[i] === '') {
      if (skip !== -1) return false; // at most one "::"
      skip = i;
    }
  }
  let high;
  let low;
  if (skip !== -1) {
    high = skip;
    low = parts.length - skip - 1;
    if (parts[0] === '' && --high) return false; // a leading ":" only as part of "::"
    if (parts[parts.length - 1] === '' && --low) return false;
    if (8 - (high + low) < 1) return false;
  } else {
    if (parts.length !== 8 || parts[0] === '' || parts[parts.length - 1] === '') return false;
    high = parts.length;
    low = 0;
  }
  return [...parts.slice(0, high), ...parts.slice(parts.length - low)].every((part) => HEX_PART.test(part));
}

/** @type {Validator} */
function ipv6(candidate) {
  let colons = 0;
  for (const ch of candidate) if (ch === ':') colons += 1;
  if (colons < 2 || colons === candidate.length) return null;
  return ipv6Ok(candidate) ? candidate.length : null;
}

/**
 * The text `candidate` is the base64 (standard or URL-safe, padding optional) of, or null: valid UTF-8 of
 * printable characters and whitespace only.
 * @param {string} candidate
 * @returns {string | null}
 */
export function decodedText(candidate) {
  let core = candidate.replace(/=+$/, '');
  // Python's decoder takes ASCII only; every test below would reject a candidate with anything else, or it would.
  if (NOT_ASCII.test(core) || core.length % 4 === 1) return null;
  // The first character of every four encodes the top six bits of a byte: for ASCII text one of TEXT_LEADS.
  let leads = 0;
  let count = 0;
  for (let i = 0; i < core.length; i += 4) {
    const lead = TEXT_LEADS.has(core[i]);
    if (count < 3 && !lead) return null;
    if (lead) leads += 1;
    count += 1;
  }
  if (leads * 4 < count * 3) return null;
  if (core.includes('-') || core.includes('_')) {
    if (core.includes('+') || core.includes('/')) return null;
    core = core.replaceAll('-', '+').replaceAll('_', '/');
  }
  let text;
  try {
    text = UTF8.decode(Buffer.from(core, 'base64'));
  } catch {
    return null;
  }
  if (text === '' || UNPRINTABLE.test(text)) return null;
  return text;
}

/** @type {Validator} */
function basicCredentials(candidate) {
  // Basic <base64 of user:password>; "Basic authentication" and other base64 are left alone.
  const text = decodedText(candidate);
  if (text === null) return null;
  const colon = text.indexOf(':');
  return colon >= 0 && colon < text.length - 1 ? candidate.length : null;
}

/**
 * A validator for base64 that decodes to text in which `findsSecret` (the value rules) finds a secret.
 * @param {(text: string) => boolean} findsSecret
 * @returns {Validator}
 */
export function base64Secret(findsSecret) {
  return (candidate) => {
    if (candidate.toLowerCase() === candidate || candidate.toUpperCase() === candidate) return null;
    const text = decodedText(candidate);
    return text !== null && findsSecret(text) ? candidate.length : null;
  };
}

// -- the opaque-token detector (validators.py explains it; docs/redaction.md gives its calibration) ------------------
const TOKEN_MIN = 32;
const SCORE_MIN = 0.2;
const WORDY_WEIGHT = 0.6;
const EXEMPT_PREFIX = /^(?:sha(?:1|224|256|384|512)-|_Z|_R[A-Z]|AAAA[B-E][0-9A-Za-z]{2}zaC1|AAAAE2VjZHNh)/;
const WORD = /[A-Z]?[a-z]{3,}|[A-Z]{4,}(?![a-z])/g;
const CONSONANTS4 = /[^aeiouyAEIOUY]{4}/;
const VOWELS = /[aeiouyAEIOUY]/g;
const HEX = /[0-9a-fA-F]/g;
const SEPARATORS = /[/_+=-]/;
const CLASS_RUNS = /[a-z]+|[A-Z]+|[0-9]+|[^a-zA-Z0-9]+/g;

/**
 * How random `core` reads: about 0.6 for a random token, below 0 for identifiers and paths.
 * @param {string} core
 */
export function tokenScore(core) {
  const switches = (/** @type {RegExpMatchArray} */ (core.match(CLASS_RUNS)).length - 1) / (core.length - 1);
  let wordy = 0;
  for (const [word] of core.matchAll(WORD)) {
    if (word.length >= 4 && (word.match(VOWELS)?.length ?? 0) * 4 >= word.length && !CONSONANTS4.test(word)) {
      wordy += word.length;
    }
  }
  return switches - (WORDY_WEIGHT * wordy) / core.length;
}

/** @param {string} core */
function readsAsPath(core) {
  const parts = core.split(SEPARATORS);
  if (parts.length < 3) return false;
  for (const part of parts) {
    if (/^[0-9]+$/.test(part) || part.length <= 3 || (/[A-Z]/.test(part) && !/[a-z]/.test(part) && part.length <= 6)) {
      continue;
    }
    if (!/^[A-Za-z]+$/.test(part) || !/[aeiouyAEIOUY]/.test(part) || CONSONANTS4.test(part)) return false;
  }
  return true;
}

/** @type {Validator} */
export function opaqueToken(candidate) {
  const core = candidate.replace(/=+$/, '');
  if (core.length < TOKEN_MIN || core.toLowerCase() === core || core.toUpperCase() === core) return null;
  if ((core.length - (core.match(HEX)?.length ?? 0)) * 8 < core.length) return null;
  if (EXEMPT_PREFIX.test(core) || readsAsPath(core) || decodedText(candidate) !== null) return null;
  return tokenScore(core) >= SCORE_MIN ? candidate.length : null;
}

/** @type {Readonly<Record<string, Validator>>} */
export const VALIDATORS = Object.freeze({
  card,
  iban,
  tokenish,
  ipv6,
  basic_credentials: basicCredentials,
  opaque_token: opaqueToken,
});
