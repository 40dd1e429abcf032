"""``stackwatch demo``: a simulated MeshHook workload, so a new dashboard is never empty.

Two workloads. The JavaScript one (:mod:`stackwatch.demo.javascript`) runs the MeshHook example of a checkout on
``@stackwatch/sdk``, when Node.js is there. The Python one, here, runs anywhere: three component processes
— ``api``, ``orchestrator`` and ``http-executor`` — run synthetic workflow runs through :mod:`stackwatch.sdk` and
fail as real ones do: a webhook whose signature does not match, a target answering 5xx,
a timeout, a transform on a malformed payload, a lost lease, and one fatal crash of the orchestrator. Secrets are
planted in variables, URLs, messages and breadcrumbs; none of them may be visible in Stackwatch afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys

from stackwatch.demo.result import DemoResult
from stackwatch.demo.workload import COMPONENTS, planted_secrets

__all__ = ["COMPONENTS", "DemoResult", "planted_secrets", "run_demo"]

# The component that ends with an unhandled fatal error, as a crashing worker would.
CRASHING = "orchestrator"


def run_demo(
    dsn: str, *, runs: int = 12, seed: int = 1, spool_dir: str | None = None, timeout: float = 120.0
) -> list[DemoResult]:
    """Run the three components side by side and wait for them; each delivers (or spools) its events."""
    env = dict(os.environ)
    env.pop("SENTRY_DSN", None)
    processes = {}
    for component in COMPONENTS:
        command = [sys.executable, "-m", "stackwatch.demo", component, "--dsn", dsn, "--runs", str(runs)]
        command += ["--seed", str(seed)]
        if spool_dir:
            command += ["--spool-dir", spool_dir]
        if component == CRASHING:
            command.append("--crash")
        processes[component] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    results = []
    for component, process in processes.items():
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results.append(DemoResult(component, process.returncode, output))
    return results
