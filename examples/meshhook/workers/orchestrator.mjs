// The orchestrator: for each run:orchestrate job, reads the run's workflow definition, finds the node after the
// one that just finished, and hands it to the executor (step:execute), or ends the run.
import { enqueueStep, queue } from './lib/queue.js';
import { isMain } from './lib/is-main.js';
import { runWorker } from './lib/main.js';
import { loadWorkflow } from './lib/workflows.js';

const EXECUTABLE = new Set(['transform', 'http_call']);

/** @param {import('./lib/queue.js').Job} job */
async function handleRun(job) {
  const run = job.data;
  const workflow = loadWorkflow(run.workflow_id); // DefinitionError (with the parse error as cause) when unreadable
  const at = workflow.nodes.findIndex((n) => n.id === run.after);
  if (at < 0) throw new Error(`run ${run.run_id}: workflow ${workflow.id} has no node "${run.after}"`);
  const node = workflow.nodes[at + 1];
  if (!node || node.type === 'terminate') {
    queue.publish('run:completed', { run_id: run.run_id, workflow_id: run.workflow_id, tenant: run.tenant });
    return;
  }
  if (!EXECUTABLE.has(node.type)) {
    const where = `workflow ${workflow.id} v${workflow.version}`;
    throw new Error(`${where}: no executor for node "${node.id}" of type "${node.type}"`);
  }
  enqueueStep(run, node, run.input);
}

export async function startOrchestrator() {
  queue.process('run:orchestrate', handleRun);
  console.log('orchestrator: consuming run:orchestrate');
}

if (isMain(import.meta.url)) await runWorker('orchestrator', startOrchestrator);
