import { json } from '@sveltejs/kit';

import { findWorkflow } from '$lib/server/workflows.js';

/**
 * GET /api/workflows/[id]: one workflow. Unlike a handler that catches everything and answers 500 itself, this
 * one lets an unexpected error through to handleError, which reports it and answers 500.
 * @type {import('./$types').RequestHandler}
 */
export async function GET({ params, locals }) {
  if (!locals.user) return json({ error: 'Unauthorized' }, { status: 401 });
  const workflow = await findWorkflow(params.id);
  if (!workflow) return json({ error: 'Workflow not found' }, { status: 404 });
  return json({ workflow });
}
