// The HTTP target the executor calls: a local server in place of a CRM, an order system and a carrier. It counts
// attempts by Idempotency-Key, as a real API deduplicates by it, and fails some requests the way real ones do.
import { once } from 'node:events';
import { createServer } from 'node:http';

const SLOW_MS = 1_500;

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Start the target on 127.0.0.1 (a free port); `url` is its base URL. */
export async function startTarget() {
  /** @type {Map<string, number>} */
  const attempts = new Map();
  /** @type {Set<NodeJS.Timeout>} */
  const timers = new Set();

  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const key = String(req.headers['idempotency-key'] ?? '');
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null;
      const path = new URL(req.url ?? '/', 'http://target').pathname;
      const order = path.match(/^\/orders\/(\d+)$/);
      if (req.method === 'POST' && path === '/contacts') {
        if (String(body?.email).endsWith('.invalid')) send(res, 422, { error: 'email domain does not accept mail' });
        else send(res, 201, { id: `contact_${attempts.size}` });
      } else if (req.method === 'GET' && order) {
        const id = Number(order[1]);
        if (id % 3 === 0) send(res, 500, { error: 'internal error' });
        else if (id % 3 === 1 && attempt === 1) send(res, 503, { error: 'upstream unavailable' });
        else send(res, 200, { id, total: 129.5, currency: 'EUR' });
      } else if (req.method === 'POST' && path === '/invoices') {
        send(res, 201, { id: `inv_${body?.order_id}` });
      } else if (req.method === 'POST' && path === '/carriers/dhl/notify') {
        if (Number(body?.shipment) % 2 === 0) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (!res.destroyed) send(res, 202, { queued: true });
          }, SLOW_MS);
          timers.add(timer);
        } else send(res, 202, { queued: true });
      } else send(res, 404, { error: 'no such route' });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
