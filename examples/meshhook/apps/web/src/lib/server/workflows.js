// The workflow definitions the API serves: an in-memory table in place of MeshHook's workflow_definitions.
// Two rows are broken on purpose, so that the API fails the way a real one does.

/**
 * @typedef {{ id: string, name: string, version: number, tenant: string,
 *   definition: { nodes: { id: string, type: string }[] } | null }} Workflow
 */

/** @type {Map<string, Workflow>} */
const WORKFLOWS = new Map(
  [
    {
      id: 'wf_lead_sync',
      name: 'Lead sync',
      version: 3,
      tenant: 'acme',
      definition: {
        nodes: [
          { id: 'webhook', type: 'webhook' },
          { id: 'mapLead', type: 'transform' },
          { id: 'createContact', type: 'http_call' },
        ],
      },
    },
    {
      id: 'wf_order_sync',
      name: 'Order sync',
      version: 7,
      tenant: 'globex',
      definition: {
        nodes: [
          { id: 'webhook', type: 'webhook' },
          { id: 'fetchOrder', type: 'http_call' },
          { id: 'pushInvoice', type: 'http_call' },
        ],
      },
    },
    // Migrated from an older schema without its definition: reading it fails with a TypeError.
    { id: 'wf_legacy_import', name: 'Legacy import', version: 1, tenant: 'umbrella', definition: null },
  ].map((w) => [w.id, w]),
);

/** @returns {Workflow[]} */
export function listWorkflows() {
  return [...WORKFLOWS.values()];
}

/**
 * A workflow with its node count, or null when there is none of that id.
 * @param {string} id
 */
export async function findWorkflow(id) {
  if (id === 'boom') {
    // What the database driver says when the statement timeout hits; 'boom' is the id that always gets there.
    throw new Error(`loading workflow "${id}": canceling statement due to statement timeout`);
  }
  const row = WORKFLOWS.get(id);
  if (!row) return null;
  const definition = /** @type {NonNullable<Workflow['definition']>} */ (row.definition);
  return { id: row.id, name: row.name, version: row.version, nodes: definition.nodes.length };
}
