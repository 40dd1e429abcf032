// Accepting a webhook: checking its signature and recording a run. MeshHook inserts the run and enqueues it for
// the orchestrator; the example API has no queue, so it only reads what the orchestrator would need.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/**
 * The HMAC secret a workflow's webhook is signed with, if it has one (MeshHook: DEFAULT_WEBHOOK_SECRET). In the
 * example only wf_signed has one: MESHHOOK_WEBHOOK_SECRET, or a fixed development value.
 * @param {string} workflowId
 */
export function webhookSecret(workflowId) {
  if (workflowId !== 'wf_signed') return undefined;
  return process.env.MESHHOOK_WEBHOOK_SECRET ?? 'meshhook-example-development-secret';
}

/**
 * Whether `signature` is `sha256=<hex HMAC of body>` under `secret`.
 * @param {string} secret
 * @param {string} body
 * @param {string | null} signature
 */
export function signatureMatches(secret, body, signature) {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const given = Buffer.from(signature ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * A new run of `workflowId` for the delivery `payload` (parsed JSON).
 * @param {string} workflowId
 * @param {any} payload
 */
export function createRun(workflowId, payload) {
  // A sender that does not wrap its payload in an `event` object makes this throw a TypeError: the bug the
  // example's webhook route reports.
  const trigger = { type: payload.event.type, delivery: payload.event.id };
  return { id: randomUUID(), workflowId, trigger };
}
