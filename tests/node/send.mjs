// Sends a few events through the real @sentry/node to the DSN given, like a MeshHook component would.
// Usage: node send.mjs DSN [SUFFIX]   (or STACKWATCH_DSN / STACKWATCH_SUFFIX in the environment)
// Prints the captured event ids as JSON on its last line; exits 1 when the SDK could not flush them.
import * as Sentry from "@sentry/node";

const dsn = process.argv[2] ?? process.env.STACKWATCH_DSN;
const suffix = process.argv[3] ?? process.env.STACKWATCH_SUFFIX ?? "local";
if (!dsn) {
  console.error("usage: node send.mjs DSN [SUFFIX]");
  process.exit(2);
}

Sentry.init({ dsn, release: "meshhook-web@2.0.1", environment: "live-test", sendDefaultPii: false });
Sentry.setTag("component", "sveltekit-api");

const ids = {};
const workflow = { workflow_id: `wf_${suffix}`, run_id: `run_${suffix}`, step_id: "deliver", tenant: "acme" };

function deliverWebhook() {
  const cause = new RangeError(`retry budget exhausted (${suffix})`);
  throw new Error(`webhook delivery failed (${suffix})`, { cause });
}

Sentry.withScope((scope) => {
  for (const [key, value] of Object.entries(workflow)) scope.setTag(key, value);
  scope.setContext("workflow", { ...workflow, queue: "webhooks", job_id: "job-1" });
  scope.setUser({ id: "user-7" });
  try {
    deliverWebhook();
  } catch (error) {
    ids.exception = Sentry.captureException(error);
  }
});

Sentry.withScope((scope) => {
  scope.setTag("run_id", workflow.run_id);
  ids.message = Sentry.captureMessage(`Orchestrator lost its lease (${suffix})`, "warning");
});

const flushed = await Sentry.flush(5000);
console.log(JSON.stringify({ ...ids, flushed }));
process.exit(flushed ? 0 : 1);
