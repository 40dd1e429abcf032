// A MeshHook-shaped component for tests/test_js_leaks.py: an HTTP executor whose incoming webhook request and whose
// failing step carry planted secrets in every place an event picks data up from. Input: a JSON file named by
// SDK_TEST_INPUT (never argv: argv is reported). Prints {"ids": {...}} and exits 0 after a bounded flush.
// Usage: node leak-component.mjs capture|replay
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import * as Sentry from '@sentry/node';
import * as Stackwatch from '../../src/index.js';

const scenario = process.argv[2];
Stackwatch.init({ component: 'http-exec', environment: 'test', flushOnSignals: false });

if (scenario === 'replay') {
  const flushed = await Stackwatch.flush(20000);
  process.stdout.write(JSON.stringify({ flushed }));
  process.exit(flushed ? 0 : 3);
}

const input = JSON.parse(readFileSync(/** @type {string} */ (process.env.SDK_TEST_INPUT), 'utf8'));
const s = input.secrets;
/** @type {Record<string, string>} */
const ids = {};

const server = createServer((req, res) => {
  /** @type {Buffer[]} */
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    Stackwatch.workflowScope(
      { workflowId: `wf_${input.suffix}`, runId: `run_${input.suffix}`, stepId: 'charge', stepType: 'http', attempt: 2, tenant: 'acme' },
      () => {
        Sentry.setUser({ id: 'user-42', email: 'ann@example.com', username: `ann ${s.password}`, ip_address: '203.0.113.7', session_token: s.opaque_secret });
        Sentry.setTag('callback_url', `https://hooks.partner.test/cb?token=${s.query_token}`);
        Sentry.setTag('order', input.order);
        Sentry.setContext('partner', { signing_pem: s.pem_private_key, correlation: input.correlation });
        Sentry.setExtra('aws', s.aws_access_key);
        Sentry.setExtra('payment', { iban: s.iban, card: s.card_number });
        Sentry.setExtra('received_bytes', body.length);
        Sentry.addBreadcrumb({ category: 'http', message: `POST https://svc:${s.url_password}@partner.test/hook`, data: { authorization: `Bearer ${s.bearer_token}` } });
        console.log('github token', s.github_token);
        console.warn(`retrying ${input.order} with key ${s.stripe_api_key}`);
        const cause = new Error(`partner rejected stripe key ${s.stripe_api_key}`);
        const error = new Error(`charge for ${input.order} failed: jwt ${s.jwt_token}`, { cause });
        ids.exception = Stackwatch.captureException(error);
        ids.message = Stackwatch.captureMessage(`call failed: ${input.url_with_token}`);
      },
    );
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('failed');
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
const address = /** @type {import('node:net').AddressInfo} */ (server.address());
const payload = JSON.stringify({ order: input.order, card: s.card_number, password: s.password, note: s.opaque_secret });
await new Promise((resolve, reject) => {
  const req = httpRequest(
    {
      host: '127.0.0.1',
      port: address.port,
      method: 'POST',
      path: `/webhooks/partner?token=${s.query_token}&order=${input.order}`,
      headers: {
        authorization: `Bearer ${s.bearer_token}`,
        cookie: `sid=${s.opaque_secret}; theme=dark`,
        'x-hub-signature-256': `sha256=${s.github_token}`,
        'x-signature': s.stripe_api_key,
        'content-type': 'application/json',
        'x-request-id': input.correlation,
      },
    },
    (res) => {
      res.resume();
      res.on('end', resolve);
    },
  );
  req.on('error', reject);
  req.end(payload);
});
server.close();
// The first envelope of each capture is on disk now; the flush only tries to deliver (the server may be down).
const flushed = await Stackwatch.flush(Number(process.env.SDK_TEST_FLUSH_MS ?? 3000));
process.stdout.write(JSON.stringify({ ids, flushed }));
process.exit(0);
