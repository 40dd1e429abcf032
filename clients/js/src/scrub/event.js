// Scrubbing of a whole event: key rules, value rules on every string and key, and Sentry-shaped `_meta`. The port
// of src/stackwatch/scrub/event.py, whose docstring explains the walk, the order of `_meta`, keys that hold secrets
// and why a client's `_meta` is not trusted; the result is the same, down to each offset and length in `_meta`.
//
// The input is what JSON.parse returns. Anything else is scrubbed as JSON.stringify would see it: a value with a
// toJSON method as what that returns (a Date as its string), another object as its own enumerable properties, and
// undefined, functions, symbols and bigints as they are (filtered under a key rule where they are numbers). A
// container that holds itself is `[Circular ~]` where it recurs. A property that cannot be read (a getter or a
// proxy that throws) is left out, an array item so is null, and a client `_meta` that cannot be read is dropped:
// scrubbing never throws for what is in the event. The input is never changed.

import { ALLOWED_KEYS, CONFUSABLES, KEY_LABEL, LIST_PAIRING, PAIR_PARENTS, RULES } from './rules.js';
import { toJavaScript } from './pattern.js';
import { codePoints, stringScrubber } from './text.js';

/** @typedef {import('./text.js').ScrubOptions} ScrubOptions */
/** @typedef {import('./text.js').RuleSet} RuleSet */
/** @typedef {import('./text.js').Scrubbed} Scrubbed */

/** What a value under a key rule becomes. */
export const FILTERED = KEY_LABEL;
const CIRCULAR = '[Circular ~]';
const KEY_KIND = 'k';
const LABELS = new Map(RULES.map((/** @type {import('./rules.js').Rule} */ r) => [r.name, r.label]));
const AWS_KEY_LABEL = /** @type {string} */ (LABELS.get(LIST_PAIRING.beside));
const AWS_SECRET_RULE = LIST_PAIRING.rule;
const AWS_SECRET_LABEL = /** @type {string} */ (LABELS.get(AWS_SECRET_RULE));
const AWS_SECRET = (() => {
  const { source, flags } = toJavaScript(LIST_PAIRING.item);
  return new RegExp(`^(?:${source})$`, flags);
})();
const LABEL = /\[Filtered:([A-Za-z0-9_]+)\]/;
const SUBSTRING_RULES = RULES.filter((/** @type {any} */ r) => r.kind === 'key').map(
  (/** @type {any} */ r) => /** @type {[string, string]} */ ([r.pattern, r.name]),
);
const PART_RULES = new Map(
  RULES.filter((/** @type {any} */ r) => r.kind === 'key_part').map((/** @type {any} */ r) => [r.pattern, r.name]),
);
const CAMEL = /([a-z0-9])([A-Z])/g;
const SEPARATORS = /[^a-z0-9]+/g;
const ASCII = /^[\x00-\x7f]*$/;
const MARKS = /[\p{Mn}\p{Me}\p{Cf}]/gu;
const LOOK_ALIKES = new RegExp(`[${[...CONFUSABLES.keys()].map((ch) => `\\u{${ch.codePointAt(0)?.toString(16)}}`).join('')}]`, 'gu');
// What keyPolicy returns for an allow-listed key (rule names are plain words, so this is never one).
const KEEP = '\u0000keep';
// Roles of a list in the walk: plain; directly under a PAIR_PARENTS key (its lists may be pairs); one of those.
const PLAIN = 0;
const UNDER_PAIR_KEY = 1;
const MAYBE_PAIR = 2;
const RULE_NAME = /^!?[A-Za-z0-9_.:-]{1,64}$/;
const REMARK_KINDS = new Set(['a', 'x', 's', 'm', 'p', 'e', KEY_KIND]);
const KEY_CACHE_SIZE = 4096;

/**
 * `key` with look-alike letters folded to ASCII: NFKC, combining marks and format characters removed, Cyrillic
 * and Greek homoglyphs mapped to Latin.
 * @param {string} key
 */
export function foldKey(key) {
  if (ASCII.test(key)) return key;
  const kept = key.normalize('NFKC').normalize('NFKD').replace(MARKS, '');
  return kept.normalize('NFC').replace(LOOK_ALIKES, (ch) => /** @type {string} */ (CONFUSABLES.get(ch)));
}

/** @type {Map<string, string | null>} */
let keyRules = new Map();

/**
 * Name of the key rule that filters values under `key`, or null.
 * @param {string} key
 * @returns {string | null}
 */
export function keyRule(key) {
  if (typeof key !== 'string') key = String(key);
  let found = keyRules.get(key);
  if (found === undefined) {
    found = uncachedKeyRule(key);
    if (keyRules.size >= KEY_CACHE_SIZE) keyRules = new Map();
    keyRules.set(key, found);
  }
  return found;
}

/**
 * @param {string} key
 * @returns {string | null}
 */
function uncachedKeyRule(key) {
  const folded = foldKey(key);
  if (ALLOWED_KEYS.has(folded.toLowerCase())) return null;
  const normalized = folded.replace(CAMEL, '$1_$2').toLowerCase().replace(SEPARATORS, '_');
  const compact = normalized.replaceAll('_', '');
  for (const [pattern, name] of SUBSTRING_RULES) {
    if (normalized.includes(pattern) || compact.includes(pattern)) return name;
  }
  for (const part of normalized.split('_')) {
    const name = PART_RULES.get(part);
    if (name !== undefined) return name;
  }
  return null;
}

/**
 * KEEP for an allow-listed key (no key rule below it, rules above it end), else keyRule.
 * @param {string} key
 */
function keyPolicy(key) {
  return ALLOWED_KEYS.has(foldKey(key).toLowerCase()) ? KEEP : keyRule(key);
}

/**
 * What the walk needs to know of a key: the policy of the key as it will be stored, and the scrubbed key when the
 * value rules replaced part of it.
 * @typedef {[string | null, Scrubbed]} KeyInfo
 */

/**
 * @param {RuleSet} set
 * @param {string} key
 * @returns {KeyInfo}
 */
function keyInfo(set, key) {
  let info = set.keys.get(key);
  if (info === undefined) {
    const result = set.scrub(key);
    const stored = result === null ? key : result.text;
    let policy = keyPolicy(stored);
    if (policy === null) {
      // A key that held a secret filters its value too, by the rule that replaced it (decided on the stored form).
      const label = LABEL.exec(stored);
      if (label !== null) policy = label[1];
    }
    info = /** @type {KeyInfo} */ ([policy, result]);
    set.keys.set(key, info);
  }
  return info;
}

// Where a container sits: [parent's link or null for the root, slot in the parent, index among its children].
/** @typedef {[any, string | number, number] | null} Link */
// A recorded remark: [link of the container, slot in it, index in it, the _meta entry].
/** @typedef {[Link, string | number, number, Record<string, any>]} Found */

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * @param {Record<string, any>} object
 * @param {string} key
 * @param {unknown} value
 */
function put(object, key, value) {
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  else object[key] = value;
}

/** What read gives for a property whose getter (or proxy) throws. */
const UNREADABLE = Symbol('unreadable');

/**
 * `container[key]`, or UNREADABLE when reading it throws.
 * @param {any} container
 * @param {string | number} key
 */
function read(container, key) {
  try {
    return container[key];
  } catch {
    return UNREADABLE;
  }
}

/**
 * The own enumerable keys of `object` (none when a proxy's trap throws).
 * @param {object} object
 */
function keysOf(object) {
  try {
    return Object.keys(object);
  } catch {
    return [];
  }
}

/**
 * The length of a list (0 when a proxy's trap throws).
 * @param {unknown[]} list
 */
function lengthOf(list) {
  const length = read(list, 'length');
  return typeof length === 'number' ? length : 0;
}

/**
 * @param {Record<string, any>} object
 * @param {string} key
 */
function own(object, key) {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/**
 * The value as JSON.stringify sees it: toJSON's result, or a plain copy of an object that is not plain.
 * @param {object} value
 * @param {string} key
 * @returns {unknown}
 */
function jsonForm(value, key) {
  try {
    const toJSON = /** @type {any} */ (value).toJSON;
    if (typeof toJSON === 'function') return toJSON.call(value, key);
    if (Array.isArray(value)) return value;
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return value;
    /** @type {Record<string, unknown>} */
    const copy = {};
    for (const k of Object.keys(value)) {
      try {
        put(copy, k, /** @type {any} */ (value)[k]);
      } catch {
        // an unreadable property is not serialized either
      }
    }
    return copy;
  } catch {
    return null;
  }
}

/**
 * Return a scrubbed copy of `event` (the input is never changed), with every replacement in `_meta`.
 * @param {Record<string, any>} event
 * @param {ScrubOptions} [options]
 * @returns {Record<string, any>}
 */
export function scrubEvent(event, options) {
  if (!isObject(event)) throw new TypeError('scrubEvent: the event must be an object');
  const set = stringScrubber(options);
  /** @type {Record<string, any>} */
  const body = {};
  let oldMeta;
  for (const k of keysOf(event)) {
    const value = read(event, k);
    if (value === UNREADABLE) continue;
    if (k === '_meta') oldMeta = value;
    else put(body, k, value);
  }
  /** @type {Found[]} */
  const found = [];
  const scrubbed = scrubTree(body, event, set, found);
  let merged = {};
  if (isObject(oldMeta)) {
    try {
      merged = trustedMeta(oldMeta, set);
    } catch {
      // A _meta that cannot be read (a getter or proxy that throws) is dropped: nothing of it is trusted.
    }
  }
  mergeMeta(merged, buildMeta(found));
  if (Object.keys(merged).length) scrubbed._meta = merged;
  return scrubbed;
}

/**
 * @param {string} value
 * @param {NonNullable<Scrubbed>} result
 */
function valueEntry(value, result) {
  return { rem: result.remarks.map((r) => [r.rule, r.kind, r.start, r.end]), len: codePoints(value) };
}

/**
 * Copy `root` with every key and scalar scrubbed; append one entry to `found` per replacement.
 * @param {Record<string, any>} root
 * @param {object} event what `root` is a copy of
 * @param {RuleSet} set
 * @param {Found[]} found
 * @returns {Record<string, any>}
 */
function scrubTree(root, event, set, found) {
  /** @type {Record<string, any>} */
  const out = {};
  /** @type {Set<object>} the containers (as given, before jsonForm) on the path being walked */
  const open = new Set();
  /** @type {any[]} [the container as given, its JSON form, copy, inherited rule, link, role], or [the container]
   * when its walk is done */
  const stack = [[event, root, out, null, null, PLAIN]];
  while (stack.length) {
    const entry = stack.pop();
    if (entry.length === 1) {
      open.delete(entry[0]);
      continue;
    }
    const [given, source, dest, inherited, link, role] = entry;
    open.add(given);
    stack.push([given]);
    if (!Array.isArray(dest)) {
      const keys = keysOf(source);
      for (let index = 0; index < keys.length; index += 1) {
        let k = keys[index];
        let value = read(source, k);
        if (value === UNREADABLE) continue;
        let [policy, renamed] = keyInfo(set, k);
        if (renamed !== null) {
          k = rename(renamed, source, dest, found, link, index);
          policy = keyInfo(set, k)[0];
        }
        const rule = policy === KEEP ? null : inherited || policy;
        if (typeof value === 'object' && value !== null) {
          const form = open.has(value) ? CIRCULAR : jsonForm(value, k);
          if (typeof form === 'object' && form !== null) {
            const copy = Array.isArray(form) ? [] : {};
            put(dest, k, copy);
            stack.push([value, form, copy, rule, [link, k, index], PAIR_PARENTS.has(k) ? UNDER_PAIR_KEY : PLAIN]);
            continue;
          }
          value = form;
        }
        put(dest, k, scalar(value, rule, set, found, link, k, index));
      }
    } else {
      // In a pair, the key decides like a dict key does: in its stored form, allow-listed ones exempt.
      const length = lengthOf(source);
      const first = role === MAYBE_PAIR && length === 2 ? read(source, 0) : undefined;
      const pairPolicy = typeof first === 'string' ? keyInfo(set, first)[0] : null;
      const keep = pairPolicy === KEEP;
      const childRole = role === UNDER_PAIR_KEY ? MAYBE_PAIR : PLAIN;
      let keyId = false; // an item of this list was an AWS access key id
      for (let index = 0; index < length; index += 1) {
        let value = read(source, index);
        if (value === UNREADABLE) value = null;
        const rule = keep ? null : inherited || (index === 1 ? pairPolicy : null);
        if (typeof value === 'object' && value !== null) {
          const form = open.has(value) ? CIRCULAR : jsonForm(value, String(index));
          if (typeof form === 'object' && form !== null) {
            const copy = Array.isArray(form) ? [] : {};
            dest.push(copy);
            stack.push([value, form, copy, rule, [link, index, index], childRole]);
            continue;
          }
          value = form;
        }
        const result = scalar(value, rule, set, found, link, index, index);
        keyId ||= rule === null && result === AWS_KEY_LABEL && value !== result;
        dest.push(result);
      }
      if (keyId) pairAwsSecrets(dest, found, link);
    }
  }
  return out;
}

/**
 * The scrubbed form of a scalar `value` at `slot` of the container at `link`.
 * @param {unknown} value
 * @param {string | null} rule
 * @param {RuleSet} set
 * @param {Found[]} found
 * @param {Link} link
 * @param {string | number} slot
 * @param {number} index
 */
function scalar(value, rule, set, found, link, slot, index) {
  if (typeof value === 'string') {
    if (rule !== null) {
      if (value === '' || value === FILTERED) return value;
      found.push([link, slot, index, { rem: [[rule, 'x']], len: codePoints(value) }]);
      return FILTERED;
    }
    const result = set.scrub(value);
    if (result === null) return value;
    found.push([link, slot, index, valueEntry(value, result)]);
    return result.text;
  }
  if (rule !== null && (typeof value === 'number' || typeof value === 'bigint')) {
    found.push([link, slot, index, { rem: [[rule, 'x']] }]);
    return FILTERED;
  }
  return value;
}

/**
 * The key to store for a key whose scrubbed form is `renamed`: that form, with " #2", " #3", ... when another key
 * of the object (as sent, or as already stored) is spelled so; records the replacement.
 * @param {NonNullable<Scrubbed>} renamed
 * @param {Record<string, any>} source
 * @param {Record<string, any>} dest
 * @param {Found[]} found
 * @param {Link} link
 * @param {number} index
 */
function rename(renamed, source, dest, found, link, index) {
  const base = renamed.text;
  let key = base;
  for (let n = 2; Object.hasOwn(dest, key) || Object.hasOwn(source, key); n += 1) key = `${base} #${n}`;
  found.push([link, key, index, { rem: renamed.remarks.map((r) => [r.rule, KEY_KIND, r.start, r.end]) }]);
  return key;
}

/**
 * The pairing rule across list items: a string of 40 secret-key characters beside an AWS access key id.
 * @param {any[]} dest
 * @param {Found[]} found
 * @param {Link} link
 */
function pairAwsSecrets(dest, found, link) {
  for (let index = 0; index < dest.length; index += 1) {
    if (dest[index] !== AWS_KEY_LABEL) continue;
    for (const other of [index - 1, index + 1]) {
      if (other >= 0 && other < dest.length && typeof dest[other] === 'string' && AWS_SECRET.test(dest[other])) {
        found.push([link, other, other, { rem: [[AWS_SECRET_RULE, 's', 0, AWS_SECRET_LABEL.length]], len: 40 }]);
        dest[other] = AWS_SECRET_LABEL;
      }
    }
  }
}

/**
 * Python's list comparison of two orders (lexicographic, a prefix first).
 * @param {number[]} a
 * @param {number[]} b
 */
function compareOrders(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * `_meta` for the remarks in `found`, applied in the order of a last-child-first depth-first walk.
 * @param {Found[]} found
 * @returns {Record<string, any>}
 */
function buildMeta(found) {
  const ordered = found.map(([link, slot, index, entry]) => {
    const slots = [slot];
    const order = [-index];
    for (let at = link; at !== null; at = at[0]) {
      slots.push(at[1]);
      order.push(-at[2]);
    }
    return { order: order.reverse(), slots: slots.reverse(), entry };
  });
  ordered.sort((a, b) => compareOrders(a.order, b.order));
  /** @type {Record<string, any>} */
  const meta = {};
  for (const { slots, entry } of ordered) {
    let node = meta;
    for (const slot of slots) {
      const key = String(slot);
      let child = own(node, key);
      if (child === undefined) put(node, key, (child = {}));
      node = child;
    }
    const existing = own(node, '');
    if (existing === undefined) {
      node[''] = entry;
      continue;
    }
    // A replaced key and its replaced value share a path: one entry, both remarks.
    const rem = own(existing, 'rem');
    if (rem === undefined || Array.isArray(rem)) existing.rem = (rem ?? []).concat(entry.rem);
    if ('len' in entry && !Number.isInteger(own(existing, 'len'))) existing.len = entry.len;
  }
  return meta;
}

/**
 * The part of an event's own `_meta` that can be kept: nodes at paths whose keys hold no secret, and in them only
 * well-formed remarks and lengths; empty nodes are pruned.
 * @param {Record<string, any>} meta
 * @param {RuleSet} set
 * @returns {Record<string, any>}
 */
function trustedMeta(meta, set) {
  /** @type {Record<string, any>} */
  const out = {};
  /** @type {[Record<string, any>, string, Record<string, any>][]} */
  const visited = [];
  /** @type {([object, Record<string, any>, Record<string, any>] | [object])[]} [node as given, its children, copy] */
  const stack = [[meta, meta, out]];
  /** @type {Set<object>} the nodes on the path being walked: a _meta that holds itself is read once */
  const open = new Set();
  while (stack.length) {
    const entry = /** @type {[object, Record<string, any>, Record<string, any>] | [object]} */ (stack.pop());
    if (entry.length === 1) {
      open.delete(entry[0]);
      continue;
    }
    const [given, source, dest] = entry;
    open.add(given);
    stack.push([given]);
    for (const key of Object.keys(source)) {
      const value = source[key];
      if (!isObject(value) || open.has(value)) continue;
      /** @type {Record<string, any>} */
      const node = {};
      if (key === '') {
        // The entry of this node: remarks and length; an object in it is the node of a child key "".
        const rem = own(value, 'rem');
        const length = own(value, 'len');
        if (Array.isArray(rem)) {
          const remarks = rem.map((r) => trustedRemark(r, set)).filter((r) => r !== null);
          if (remarks.length) node.rem = remarks;
        }
        if (Number.isInteger(length) && length >= 0) node.len = length;
        /** @type {Record<string, any>} */
        const children = {};
        for (const k of Object.keys(value)) if (isObject(value[k])) put(children, k, value[k]);
        stack.push([value, children, node]);
      } else if (set.scrub(key) !== null) {
        continue; // a path through a key that holds a secret: the key is stored replaced, if at all
      } else {
        stack.push([value, value, node]);
      }
      put(dest, key, node);
      visited.push([dest, key, node]);
    }
  }
  for (let i = visited.length - 1; i >= 0; i -= 1) {
    const [parent, key, node] = visited[i];
    if (Object.keys(node).length === 0) delete parent[key];
  }
  return out;
}

/**
 * @param {unknown} remark
 * @param {RuleSet} set
 * @returns {unknown[] | null}
 */
function trustedRemark(remark, set) {
  if (!Array.isArray(remark) || (remark.length !== 2 && remark.length !== 4)) return null;
  const [rule, kind] = remark;
  if (typeof rule !== 'string' || !RULE_NAME.test(rule) || typeof kind !== 'string') return null;
  if (!REMARK_KINDS.has(kind) || set.scrub(rule) !== null) return null;
  if (remark.length === 4) {
    const [, , start, end] = remark;
    if (!Number.isInteger(start) || !Number.isInteger(end) || !(0 <= start && start <= end)) return null;
  }
  return remark.slice();
}

/**
 * Merge the new `_meta` into a copy of the event's own: remarks are appended, the first `len` stays. Under ""
 * a node holds its own remarks or the node of an event key "": values written here tell them apart.
 * @param {Record<string, any>} target
 * @param {Record<string, any>} fresh
 */
function mergeMeta(target, fresh) {
  /** @type {[Record<string, any>, Record<string, any>][]} */
  const stack = [[target, fresh]];
  while (stack.length) {
    const [dst, src] = /** @type {[Record<string, any>, Record<string, any>]} */ (stack.pop());
    for (const k of Object.keys(src)) {
      const v = src[k];
      const existing = own(dst, k);
      if (k === '' && isObject(existing)) {
        const rem = own(existing, 'rem');
        const newRem = own(v, 'rem');
        if (Array.isArray(newRem)) existing.rem = (Array.isArray(rem) ? rem : []).concat(newRem);
        if (Number.isInteger(own(v, 'len')) && !Object.hasOwn(existing, 'len')) existing.len = v.len;
        /** @type {Record<string, any>} */
        const nodes = {};
        let any = false;
        for (const nk of Object.keys(v)) {
          if (isObject(v[nk])) {
            put(nodes, nk, v[nk]);
            any = true;
          }
        }
        if (any) stack.push([existing, nodes]);
      } else if (isObject(existing)) {
        stack.push([existing, v]);
      } else {
        put(dst, k, v);
      }
    }
  }
}
