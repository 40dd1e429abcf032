"""The JavaScript workload of ``stackwatch demo``: MeshHook's own shape, from ``examples/meshhook`` of a checkout.

The SvelteKit API (component ``api``), the orchestrator and the HTTP executor (``orchestrator``, ``http-exec``) run
as Node.js processes on ``@stackwatch/sdk`` (``clients/js``); ``examples/meshhook/demo.mjs`` installs and builds
them when needed (``npm ci``, ``vite build``, each bounded) and drives them. It needs ``node`` and ``npm`` on the
PATH and the example beside the package, which only a checkout has: an installed wheel runs the Python workload.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from stackwatch.demo.result import DemoResult

__all__ = ["COMPONENTS", "EXAMPLE", "NAME", "missing", "planted_secrets", "run_js_demo"]

# src/stackwatch/demo/javascript.py -> the repository root
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "meshhook"
COMPONENTS = ("api", "orchestrator", "http-exec")
NAME = "meshhook-js"
# Bounds the whole run, a first install and build included (demo.mjs bounds each step itself, this is the backstop).
TIMEOUT = 900.0
_SECRET_NAMES = ("query_token", "cookie", "authorization", "webhook_body", "signature")


def missing() -> str | None:
    """Why the JavaScript workload cannot run here, or None when it can."""
    if not (EXAMPLE / "demo.mjs").is_file():
        return f"the MeshHook example (it is in a checkout of Stackwatch, not in the package: {EXAMPLE})"
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} on the PATH"
    return None


def planted_secrets(seed: int) -> dict[str, str]:
    """The secrets the JavaScript demo's requests carry (the same derivation as ``demo.mjs``)."""
    return {name: hashlib.sha256(f"stackwatch-demo:{seed}:{name}".encode()).hexdigest()[:32] for name in _SECRET_NAMES}


def run_js_demo(
    dsn: str, *, runs: int = 12, seed: int = 1, spool_dir: str | None = None, timeout: float = TIMEOUT
) -> DemoResult:
    """Run ``node examples/meshhook/demo.mjs`` and wait for it (killing its whole process group if it overstays)."""
    node = shutil.which("node") or "node"
    command = [node, str(EXAMPLE / "demo.mjs"), "--dsn", dsn, "--runs", str(runs), "--seed", str(seed)]
    if spool_dir:
        command += ["--spool-dir", spool_dir]
    env = {k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN", "STACKWATCH_DSN")}
    process = subprocess.Popen(
        command,
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its children (npm, vite, the API, the workers) go with it on a timeout
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\n(stopped after {timeout:.0f} s)"
    return DemoResult(NAME, process.returncode, output)
