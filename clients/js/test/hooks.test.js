import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as Sentry from '@sentry/node';
import * as Stackwatch from '../src/index.js';
import { makeHooks, mergeMeta, scrubSafely } from '../src/hooks.js';
import { scrubEvent } from '../src/scrub/index.js';
import { memoryTransport } from './support/memory.js';

/** A fresh secret-shaped value that no rule knows by its value alone. */
const fresh = () => `zq${randomBytes(12).toString('hex')}`;

/** @type {any[]} */
const userSaw = [];
const memory = memoryTransport();
Stackwatch.init({
  dsn: 'http://public@127.0.0.1:9/1',
  component: 'http-exec',
  transport: memory.transport,
  beforeSend(event) {
    userSaw.push(event);
    return event.message === 'drop me' ? null : event;
  },
});

/** @param {string} message */
async function eventOf(message) {
  await Stackwatch.flush(2000);
  const found = memory.events().filter((e) => (e.exception?.values?.at(-1)?.value ?? e.message) === message);
  assert.equal(found.length, 1, `one event for ${message}, got ${found.length}`);
  return found[0];
}

test('request bodies, cookies, env and headers beyond the allow-list are removed, with !config in _meta', async () => {
  const secret = fresh();
  Sentry.withScope((scope) => {
    scope.addEventProcessor((event) => ({
      ...event,
      request: {
        url: `https://hooks.example/api/run?token=${secret}&page=2`,
        method: 'POST',
        query_string: `token=${secret}&page=2`,
        data: `{"payload":"${secret}"}`,
        cookies: { sid: secret },
        env: { REMOTE_ADDR: '10.1.2.3' },
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${secret}`, 'x-custom': secret, 'User-Agent': 'ua/1' },
      },
    }));
    Stackwatch.captureMessage('with a request');
  });
  const event = await eventOf('with a request');
  assert.equal(JSON.stringify(event).includes(secret), false);
  assert.deepEqual(event.request.headers, { 'content-type': 'application/json', 'User-Agent': 'ua/1' });
  assert.equal(event.request.data, undefined);
  assert.equal(event.request.cookies, undefined);
  assert.equal(event.request.env, undefined);
  assert.equal(event.request.method, 'POST');
  assert.match(event.request.query_string, /page=2/);
  assert.deepEqual(event._meta.request.data, { '': { rem: [['!config', 'x']] } });
  assert.deepEqual(event._meta.request.headers['x-custom'], { '': { rem: [['!config', 'x']] } });
  assert.equal(event.tags.component, 'http-exec');
});

test('user info is cut to the id', async () => {
  Sentry.withScope((scope) => {
    scope.setUser({ id: 'u-7', email: 'ann@example.com', username: 'ann', ip_address: '203.0.113.9' });
    Stackwatch.captureMessage('with a user');
  });
  const event = await eventOf('with a user');
  assert.deepEqual(event.user, { id: 'u-7' });
});

test('secrets in messages, causes, tags, extra, contexts and breadcrumbs are masked; the caller saw the event first', async () => {
  const [a, b, c, d, e, f] = [fresh(), fresh(), fresh(), fresh(), fresh(), fresh()];
  Sentry.withScope((scope) => {
    scope.setTag('api_key', a);
    scope.setExtra('password', b);
    scope.setContext('upstream', { authorization: `Bearer ${c}` });
    console.error('token', d);
    Sentry.addBreadcrumb({ category: 'http', message: `GET https://x.example/?sig=${e}` });
    Stackwatch.captureException(new Error(`cannot log in: password=${f}`, { cause: new Error(`token=${a}`) }));
  });
  const event = await eventOf('cannot log in: password=[Filtered:secret_param]');
  const sent = JSON.stringify(event);
  for (const secret of [a, b, c, d, e, f]) assert.equal(sent.includes(secret), false, `${secret} left`);
  assert.equal(memory.bytes().includes(d), false);
  const crumb = event.breadcrumbs.find((/** @type {any} */ x) => x.category === 'console');
  assert.deepEqual(crumb.data.arguments, ['token', Stackwatch.FILTERED]);
  const index = event.breadcrumbs.indexOf(crumb);
  assert.ok(event._meta.breadcrumbs[String(index)].data.arguments, 'the console breadcrumb\'s remarks are in _meta');
  assert.ok(userSaw.some((x) => JSON.stringify(x).includes(f)), 'the caller\'s beforeSend runs before redaction');
});

test('the caller can drop an event, and a throwing hook drops it instead of sending it unscrubbed', async () => {
  Stackwatch.captureMessage('drop me');
  await Stackwatch.flush(2000);
  assert.equal(memory.events().some((x) => x.message === 'drop me'), false);
  const hooks = makeHooks({ component: 'x', beforeSend: () => { throw new Error('bug'); } });
  assert.equal(hooks.beforeSend({ message: 'm' }, {}), null);
  const cyclic = /** @type {any} */ ({ message: 'm', extra: {} });
  cyclic.extra.self = cyclic;
  const result = makeHooks({ component: 'x' }).beforeSend(cyclic, {});
  assert.match(JSON.stringify(result.extra), /\[Circular ~\]/, 'an event holding itself is sent with the cycle cut');
  assert.equal(result.tags.component, 'x');
});

test('scrubSafely drops a field the engine cannot handle and says so in _meta', () => {
  /** @type {typeof scrubEvent} */
  const engine = (event, options) => {
    if ('extra' in event) throw new Error('engine bug');
    return scrubEvent(event, options);
  };
  const out = scrubSafely({ message: 'token=zq0123456789abcdef', extra: { a: 1 } }, {}, engine);
  assert.equal(out.message, 'token=[Filtered:secret_param]');
  assert.equal(out.extra, undefined);
  assert.deepEqual(out._meta.extra, { '': { rem: [['!stackwatch.scrub_error', 'x']] } });
});

test('keepRequestDetails keeps what the caller asked for, still scrubbed', () => {
  const secret = fresh();
  const hooks = makeHooks({ component: 'x', keepRequestDetails: true, keepUserDetails: true });
  const out = hooks.beforeSend({ request: { data: `password=${secret}`, headers: { 'x-trace': 'abc' } }, user: { id: 1, username: 'ann' } }, {});
  assert.equal(out.request.headers['x-trace'], 'abc');
  assert.equal(out.request.data.includes(secret), false);
  assert.equal(out.user.username, 'ann');
});

test('mergeMeta concatenates remarks on one field', () => {
  const target = { a: { '': { rem: [['x', 's']], len: 3 } } };
  mergeMeta(target, { a: { '': { rem: [['y', 'x']], len: 9 } }, b: { '': { rem: [] } } });
  assert.deepEqual(target, { a: { '': { rem: [['x', 's'], ['y', 'x']], len: 3 } }, b: { '': { rem: [] } } });
});

test('secretArguments finds the argument after a secret-looking word', () => {
  assert.deepEqual([...Stackwatch.secretArguments(['token', 't', 'ok', 'x'])], [[1, 'token']]);
  assert.deepEqual([...Stackwatch.secretArguments(['api_key =', 'k'])].length, 1);
  assert.equal(Stackwatch.secretArguments(['hello', 'world']).size, 0);
});
