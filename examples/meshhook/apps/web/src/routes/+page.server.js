import { listWorkflows } from '$lib/server/workflows.js';

/** @type {import('./$types').PageServerLoad} */
export function load() {
  return { workflows: listWorkflows().map(({ id, name, version, tenant }) => ({ id, name, version, tenant })) };
}
