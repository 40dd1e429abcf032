import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as Stackwatch from '../src/sveltekit.js';
import * as Sentry from '@sentry/node';
import { memoryTransport } from './support/memory.js';

const memory = memoryTransport();
Stackwatch.init({ dsn: 'http://public@127.0.0.1:9/1', component: 'api', transport: memory.transport, keepRequestDetails: true });
const handle = Stackwatch.handle();
const handleError = Stackwatch.handleError(({ message }) => ({ message: `shown: ${message}` }));

/**
 * Run a request through handle → a route that throws → handleError, the way SvelteKit does.
 * @param {string} routeId
 * @param {Request} request
 */
async function serve(routeId, request) {
  const event = { request, route: { id: routeId }, url: new URL(request.url) };
  return handle({
    event,
    resolve: async () => {
      const body = request.method === 'POST' ? await request.clone().text() : undefined;
      Sentry.getIsolationScope().setSDKProcessingMetadata({
        normalizedRequest: {
          url: request.url, method: request.method, headers: Object.fromEntries(request.headers), data: body,
        },
      });
      try {
        throw new Error(`route ${routeId} failed`);
      } catch (error) {
        const shown = handleError({ error, event, status: 500, message: 'Internal Error' });
        return new Response(JSON.stringify(shown), { status: 500 });
      }
    },
  });
}

/** @param {string} message */
async function eventOf(message) {
  await Stackwatch.flush(2000);
  const found = memory.events().filter((e) => e.exception?.values?.at(-1)?.value === message);
  assert.equal(found.length, 1, `one event for ${message}`);
  return found[0];
}

test('a route error is reported with component=api and the route, and the app\'s handleError result is kept', async () => {
  const response = await serve('/api/workflows/[id]', new Request('http://app.local/api/workflows/7', { headers: { accept: 'application/json' } }));
  assert.deepEqual(await response.json(), { message: 'shown: Internal Error' });
  const event = await eventOf('route /api/workflows/[id] failed');
  assert.equal(event.tags.component, 'api');
  assert.equal(event.tags.route, '/api/workflows/[id]');
  assert.equal(event.exception.values.at(-1).mechanism.type, 'sveltekit');
});

test('a webhook route never attaches its body or signature headers, even with keepRequestDetails', async () => {
  const secret = randomBytes(16).toString('hex');
  await serve('/webhooks/[id]', new Request('http://app.local/webhooks/gh', {
    method: 'POST',
    body: JSON.stringify({ payload: secret }),
    headers: { 'x-hub-signature-256': `sha256=${secret}`, 'x-signature': secret, 'content-type': 'application/json', cookie: `sid=${secret}` },
  }));
  const event = await eventOf('route /webhooks/[id] failed');
  assert.equal(event.tags.webhook, 'true');
  assert.equal(JSON.stringify(event).includes(secret), false);
  assert.equal(event.request?.data, undefined);
  for (const name of Object.keys(event.request?.headers ?? {})) assert.ok(Stackwatch.ALLOWED_HEADERS.includes(name), name);
});

test('404s are not reported; isWebhookRoute knows the usual route ids', async () => {
  handleError({ error: new Error('Not found: /nope'), event: { request: new Request('http://x/nope'), route: { id: null }, url: new URL('http://x/nope') }, status: 404, message: 'Not Found' });
  await Stackwatch.flush(2000);
  assert.equal(memory.events().some((e) => e.exception?.values?.at(-1)?.value === 'Not found: /nope'), false);
  const is = (/** @type {string} */ id) => Stackwatch.isWebhookRoute({ route: { id }, request: new Request('http://x/'), url: new URL('http://x/') });
  assert.equal(is('/webhooks/[id]'), true);
  assert.equal(is('/api/webhook'), true);
  assert.equal(is('/(webhooks)/github'), true);
  assert.equal(is('/api/workflows/[id]'), false);
});
