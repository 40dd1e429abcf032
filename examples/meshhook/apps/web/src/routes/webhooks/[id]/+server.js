import { json } from '@sveltejs/kit';

import { createRun, signatureMatches, webhookSecret } from '$lib/server/runs.js';

/**
 * POST /webhooks/[id]: a delivery for workflow `id`, signed in `x-hub-signature-256` when the workflow has a secret.
 * A body that is not JSON, or JSON the run cannot be made from, throws: handleError reports it (without the body or
 * the signature) and the sender gets a 500, so it retries the delivery.
 * @type {import('./$types').RequestHandler}
 */
export async function POST({ request, params }) {
  const body = await request.text();
  const secret = webhookSecret(params.id);
  if (secret && !signatureMatches(secret, body, request.headers.get('x-hub-signature-256'))) {
    return new Response('invalid signature', { status: 401 });
  }
  const run = createRun(params.id, JSON.parse(body));
  return json({ run_id: run.id }, { status: 202 });
}
