// Secrets of known shapes (the kinds of the vectors of tests/vectors/scrub.json), and planting one in an event at a
// place where secrets are known to sit.

import { ALNUM, BASE64, DIGITS, UPPER, chars, put } from './prng.js';

/** @typedef {import('./prng.js').Rng} Rng */

export const WORDS = [
  'order', 'step', 'retry', 'webhook', 'tenant', 'payload', 'queue', 'worker', 'commit', 'fetch', 'parse', 'the',
  'failed', 'with', 'status', 'user', 'request', 'timeout', 'connection', 'refused', 'key', 'token', 'secret',
  'password', 'pin', 'code', 'auth', 'Bearer', 'Basic', 'Authorization:', 'session', 'card', 'IBAN', 'sig', 'otp',
];
// Shapes whose secret is recognised alone, without the text around it (so also as a key).
export const SELF_EVIDENT = ['aws_access_key', 'github_token', 'stripe_key', 'jwt', 'card_number', 'iban'];
// Words that no rule reacts to, to surround a planted secret with.
const NEUTRAL = WORDS.slice(0, 20);
export const SECRET_KEYS = [
  'password', 'Password', 'PASSWORD', 'passwd', 'db_password', 'userPassword', 'secret', 'client_secret', 'token',
  'accessToken', 'X-Api-Key', 'apiKey', 'API_KEY', 'x.api.key', 'apikey', 'access_key', 'Authorization', 'auth',
  'credentials', 'private_key', 'sessionid', 'Cookie', 'csrf_token', 'xsrf', 'X-Hub-Signature-256', 'cardNumber',
  'ssh_key', 'sshKey', 'pwd', 'old_pwd', 'sig', 'cvv', 'cvc', 'pin', 'user_pin', 'otp', 'totp', 'hotp', 'creds',
  'pаssword', 'ＰＡＳＳＷＯＲＤ', 'pass\u200bword', 'toke\u0301n', 'ΑUTH', 'session_count', 'max_tokens',
];
// Secrets of known shapes, the same kinds as the vectors'. Each returns [the secret, the text that carries it].
/** @type {Record<string, (rng: Rng) => [string, string]>} */
export const SECRET_SHAPES = {
  bearer: (rng) => {
    const s = chars(rng, ALNUM, 10 + rng.int(20)) + rng.int(10);
    return [s, `${rng.pick(['Bearer', 'bearer', 'BEARER'])} ${s}`];
  },
  authorization: (rng) => {
    const s = chars(rng, ALNUM, 12 + rng.int(12));
    return [s, `Authorization: ${rng.pick(['', 'Token ', 'Basic ', 'Digest '])}${s}`];
  },
  query_token: (rng) => {
    const s = chars(rng, ALNUM + '-._~', 8 + rng.int(24));
    const name = rng.pick(['token', 'access_token', 'api_key', 'key', 'sig', 'signature', 'password', 'X-Amz-Signature']);
    return [s, `https://api.example.com/v1/items?page=2&${name}=${s}&x=1`];
  },
  url_password: (rng) => {
    const s = chars(rng, ALNUM, 8 + rng.int(16));
    return [s, `${rng.pick(['postgres', 'redis', 'https', 'amqp'])}://app:${s}@db.internal:5432/orders`];
  },
  aws_access_key: (rng) => {
    const s = rng.pick(['AKIA', 'ASIA', 'AROA']) + chars(rng, UPPER + DIGITS, 16);
    return [s, `using key ${s} for s3`];
  },
  github_token: (rng) => {
    const s = rng.pick(['ghp_', 'gho_', 'ghs_']) + chars(rng, ALNUM, 36);
    return [s, `push failed with ${s}`];
  },
  stripe_key: (rng) => {
    const s = rng.pick(['sk_live_', 'sk_test_', 'rk_live_']) + chars(rng, ALNUM, 24);
    return [s, `charge with ${s} declined`];
  },
  jwt: (rng) => {
    const s = `eyJ${chars(rng, ALNUM, 20)}.eyJ${chars(rng, ALNUM, 30)}.${chars(rng, ALNUM + '-_', 43)}`;
    return [s, `id_token ${s}`];
  },
  card_number: (rng) => {
    const [prefix, length] = rng.pick([['4', 16], ['4', 13], ['51', 16], ['55', 16], ['2221', 16], ['37', 15], ['6011', 16]]);
    const s = luhnNumber(rng, prefix, length);
    const shown = rng.chance(0.5) ? s : s.replace(/(\d{4})(?=\d)/g, '$1 ');
    return [shown, `charged card ${shown} for order 12`];
  },
  iban: (rng) => {
    const s = germanIban(rng);
    return [s, `refund to ${s} today`];
  },
  pem: (rng) => {
    const s = chars(rng, BASE64, 40);
    return [s, `key:\n-----BEGIN RSA PRIVATE KEY-----\n${s}\n-----END RSA PRIVATE KEY-----\n`];
  },
  setting: (rng) => {
    const s = chars(rng, ALNUM, 12 + rng.int(12));
    return [s, `${rng.pick(['DB_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'password'])}=${s} ./run.sh`];
  },
};

/**
 * A number of `length` digits starting with `prefix` that passes the Luhn check.
 * @param {Rng} rng
 * @param {string} prefix
 * @param {number} length
 */
export function luhnNumber(rng, prefix, length) {
  let body = prefix + chars(rng, DIGITS, length - prefix.length - 1);
  for (let check = 0; check < 10; check += 1) {
    const candidate = body + check;
    let total = 0;
    for (let i = 0; i < candidate.length; i += 1) {
      let d = candidate.charCodeAt(candidate.length - 1 - i) - 48;
      if (i % 2) d = d > 4 ? d * 2 - 9 : d * 2;
      total += d;
    }
    if (total % 10 === 0) return candidate;
  }
  throw new Error('unreachable');
}

/**
 * A German IBAN (22 characters) with valid check digits.
 * @param {Rng} rng
 */
export function germanIban(rng) {
  const bban = chars(rng, DIGITS, 18);
  // mod 97 of BBAN + "DE00" with letters as numbers (D=13, E=14).
  let rest = 0;
  for (const ch of bban + '131400') rest = (rest * 10 + Number(ch)) % 97;
  return `DE${String(98 - rest).padStart(2, '0')}${bban}`;
}

/** Where a planted secret goes: a path of keys from the event's root, and how it is held there. */
const PLACES = [
  ['message'],
  ['exception', 'values', 0, 'value'],
  ['exception', 'values', 0, 'stacktrace', 'frames', 0, 'vars', 'url'],
  ['exception', 'values', 0, 'stacktrace', 'frames', 0, 'context_line'],
  ['breadcrumbs', 'values', 0, 'message'],
  ['extra', 'deep', 'deeper', 'list', 2],
  ['tags', 'trace_id'],
  ['request', 'url'],
  ['contexts', 'workflow', 'run_id'],
  ['user', 'id'],
  ['logentry', 'params', 0],
];

/**
 * Put a secret somewhere in `event`: a random shape of a known secret in a text at a known place, under a secret
 * key, in an Authorization header, in a [key, value] pair, or as a key itself. Returns the secret and where.
 * @param {Rng} rng
 * @param {Record<string, any>} event
 * @returns {{ secret: string, where: string }}
 */
export function plantSecret(rng, event) {
  const roll = rng.next();
  if (roll < 0.15) {
    // Under a key rule: anything at all is the secret, at any depth below the key.
    const secret = 'S3' + chars(rng, ALNUM + '!#%&*', 14);
    const key = rng.pick(SECRET_KEYS.filter((k) => !['session_count', 'max_tokens'].includes(k)));
    const value = rng.chance(0.5) ? secret : { nested: [`${rng.pick(WORDS)} ${secret}`] };
    setAt(event, ['extra', 'config', key], value);
    return { secret, where: `extra.config.${key}` };
  }
  if (roll < 0.25) {
    const secret = chars(rng, ALNUM, 20);
    const headers = rng.chance(0.5)
      ? [['Authorization', `Bearer ${secret}`]]
      : { [rng.pick(['Authorization', 'authorization', 'X-Api-Key', 'Cookie'])]: secret };
    setAt(event, ['request', 'headers'], headers);
    return { secret, where: 'request.headers' };
  }
  if (roll < 0.32) {
    const secret = chars(rng, ALNUM, 18);
    setAt(event, ['tags'], [['api_token', secret], ['region', 'eu']]);
    return { secret, where: 'tags (pairs)' };
  }
  if (roll < 0.4) {
    const shape = rng.pick(SELF_EVIDENT);
    const [secret] = SECRET_SHAPES[shape](rng);
    setAt(event, ['extra', 'lookup'], { [secret]: 'value', other: 1 });
    return { secret, where: `extra.lookup key (${shape})` };
  }
  const [shape, make] = rng.pick(Object.entries(SECRET_SHAPES));
  const [secret, text] = make(rng);
  const place = rng.pick(PLACES);
  setAt(event, place, `${rng.pick(NEUTRAL)} ${text} ${rng.pick(NEUTRAL)}`);
  return { secret, where: `${place.join('.')} (${shape})` };
}

/**
 * Set the value at `path`, making objects and lists on the way (replacing scalars that are in the way).
 * @param {Record<string, any>} root
 * @param {(string | number)[]} path
 * @param {unknown} value
 */
function setAt(root, path, value) {
  /** @type {any} */
  let node = root;
  for (let i = 0; i < path.length - 1; i += 1) {
    const slot = path[i];
    const nextIsIndex = typeof path[i + 1] === 'number';
    let child = Object.hasOwn(node, slot) ? node[slot] : undefined;
    if (typeof child !== 'object' || child === null || Array.isArray(child) !== nextIsIndex) {
      child = nextIsIndex ? [] : {};
      if (Array.isArray(node)) node[/** @type {number} */ (slot)] = child;
      else put(node, String(slot), child);
    }
    while (nextIsIndex && child.length <= /** @type {number} */ (path[i + 1])) child.push(null);
    node = child;
  }
  const last = path[path.length - 1];
  if (Array.isArray(node)) node[/** @type {number} */ (last)] = value;
  else put(node, String(last), value);
}
