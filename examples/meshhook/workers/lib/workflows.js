// The workflow definitions the workers run, stored as JSON text as MeshHook keeps them in workflow_definitions, and
// the trigger payloads the demo's webhook deliveries carry. Each workflow fails in its own realistic way for some
// of its runs; see README.md for the table.
import { DefinitionError } from './errors.js';

/**
 * @typedef {{ id: string, type: string, method?: string, path?: string, transform?: string, timeoutMs?: number }}
 *   WorkflowNode
 */
/** @typedef {{ id: string, version: number, tenant: string, nodes: WorkflowNode[] }} Workflow */

const webhook = { id: 'webhook', type: 'webhook' };
const done = { id: 'done', type: 'terminate' };

/** @type {Record<string, { version: number, tenant: string, definition: string }>} */
const STORED = {
  wf_lead_sync: {
    version: 3,
    tenant: 'acme',
    definition: JSON.stringify({
      nodes: [
        webhook,
        { id: 'mapLead', type: 'transform', transform: 'lead' },
        { id: 'createContact', type: 'http_call', method: 'POST', path: '/contacts' },
        done,
      ],
    }),
  },
  wf_order_sync: {
    version: 7,
    tenant: 'globex',
    definition: JSON.stringify({
      nodes: [
        webhook,
        { id: 'fetchOrder', type: 'http_call', method: 'GET', path: '/orders/{id}' },
        { id: 'pushInvoice', type: 'http_call', method: 'POST', path: '/invoices' },
        done,
      ],
    }),
  },
  wf_shipping_notify: {
    version: 2,
    tenant: 'initech',
    definition: JSON.stringify({
      nodes: [
        webhook,
        { id: 'notifyCarrier', type: 'http_call', method: 'POST', path: '/carriers/dhl/notify', timeoutMs: 250 },
        done,
      ],
    }),
  },
  // A node type this orchestrator has no executor for (published by a newer editor).
  wf_branching: {
    version: 5,
    tenant: 'acme',
    definition: JSON.stringify({ nodes: [webhook, { id: 'route', type: 'branch' }, done] }),
  },
  // A definition cut short when it was stored: reading it fails with a SyntaxError, kept as the cause.
  wf_legacy_import: {
    version: 1,
    tenant: 'umbrella',
    definition: '{"nodes": [{"id": "webhook", "type": "webhook"}, {"id": "import", "type": "http_c',
  },
};

export const WORKFLOW_IDS = Object.keys(STORED);

/**
 * The newest definition of `workflowId`.
 * @param {string} workflowId
 * @returns {Workflow}
 */
export function loadWorkflow(workflowId) {
  const row = STORED[workflowId];
  if (!row) throw new DefinitionError(`no workflow ${workflowId}`);
  try {
    return { id: workflowId, version: row.version, tenant: row.tenant, nodes: JSON.parse(row.definition).nodes };
  } catch (err) {
    throw new DefinitionError(`workflow ${workflowId} v${row.version}: the stored definition cannot be read`, {
      cause: err,
    });
  }
}

/**
 * The metadata of a workflow without parsing its definition (what the runs table holds).
 * @param {string} workflowId
 */
export function workflowInfo(workflowId) {
  const row = STORED[workflowId];
  return { workflow_id: workflowId, workflow_version: row.version, tenant: row.tenant };
}

/**
 * The trigger payload of the `k`-th run of `workflowId`: most are fine, some are what makes a step fail.
 * @param {string} workflowId
 * @param {number} k
 */
export function triggerPayload(workflowId, k) {
  switch (workflowId) {
    case 'wf_lead_sync':
      // k % 3: a good lead; one without an email (the transform throws a TypeError); one the CRM rejects (422)
      return [
        { lead: { email: ' Ada.Lovelace@Example.com ', name: 'Ada Lovelace' } },
        { lead: { name: 'Grace Hopper' } },
        { lead: { email: 'bounce@mail.invalid', name: 'Bo Unce' } },
      ][k % 3];
    case 'wf_order_sync':
      // The target fails order ids ≡ 0 (mod 3) on every attempt (500) and ≡ 1 on the first one only (503).
      return { id: 4000 + k };
    case 'wf_shipping_notify':
      // The carrier answers even shipment ids too late: every attempt times out.
      return { shipment: 700 + k };
    default:
      return { imported: k };
  }
}
