"""One simulated MeshHook component: synthetic workflow runs that fail the way real ones do.

Each component reports through :mod:`stackwatch.sdk` exactly as a real one would, and plants secrets where real
code leaks them (frame variables, URLs, messages, breadcrumbs, logging arguments), so the dashboard shows what
redaction removed. The secrets are made at run time from the seed (see :func:`planted_secrets`), never written in
this file, so a source line in a stack trace cannot carry one.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

import sentry_sdk

import stackwatch.sdk as sdk

__all__ = ["COMPONENTS", "planted_secrets", "run_component"]

COMPONENTS = ("api", "orchestrator", "http-executor")
WORKFLOWS = (("wf_order_sync", 7), ("wf_customer_signup", 3), ("wf_invoice_export", 12))
TENANTS = ("acme", "globex", "initech")
RELEASE = "meshhook@2.3.0"

log = logging.getLogger("meshhook")


def _token(rng: random.Random, size: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def planted_secrets(seed: int) -> dict[str, str]:
    """The secrets a demo run with ``seed`` plants; none of them may ever be visible in Stackwatch."""
    rng = random.Random(f"stackwatch-demo-secrets-{seed}")
    upper = string.ascii_uppercase + string.digits
    return {
        "stripe": "sk_live_" + _token(rng, 24),
        "bearer": _token(rng, 40),
        "webhook_secret": "whsec_" + _token(rng, 32),
        "url_password": _token(rng, 18),
        "query_token": _token(rng, 28),
        "aws": "AKIA" + _token(rng, 16, upper),
        "github": "ghp_" + _token(rng, 36),
        "db_password": _token(rng, 20),
        "card": "4111 1111 1111 1111",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ" + _token(rng, 20) + "In0." + _token(rng, 43),
    }


# --- the failures -------------------------------------------------------------------------------------------


class TargetHTTPError(Exception):
    """The target of an HTTP step answered with an error status."""


class TransformError(Exception):
    """A step's transform could not be applied to the payload it was given."""


class LeaseLostError(Exception):
    """The orchestrator lost its lease on a run to another worker."""


class SignatureMismatch(Exception):
    """An incoming webhook's signature does not match."""


@dataclass(frozen=True)
class Run:
    workflow_id: str
    workflow_version: int
    run_id: str
    tenant: str


def call_target(run: Run, secrets: dict[str, str], attempt: int) -> None:
    url = f"https://hooks.partner.example/v1/orders?tenant={run.tenant}&token={secrets['query_token']}"
    headers = {"Authorization": f"Bearer {secrets['bearer']}", "X-Request-Id": run.run_id, "User-Agent": "meshhook"}
    status = 503 if attempt < 3 else 502
    raise TargetHTTPError(
        f"POST {url} returned {status} Service Unavailable (attempt {attempt}, {headers['X-Request-Id']})"
    )


def call_crm(run: Run, secrets: dict[str, str]) -> None:
    endpoint = f"https://svc-meshhook:{secrets['url_password']}@crm.internal.example/v2/contacts"
    client_config = {"endpoint": endpoint, "timeout": 30.0, "credentials": {"api_key": secrets["stripe"]}}
    raise TimeoutError(f"POST {client_config['endpoint']} timed out after {client_config['timeout']}s")


def transform_payload(run: Run, secrets: dict[str, str]) -> dict[str, object]:
    raw = '{"order_id": 48213, "card": "' + secrets["card"] + '", "amount": 129.90, "items": [1, 2'  # truncated
    try:
        return dict(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise TransformError(f"transform 'map-order' failed on payload for run {run.run_id}: {exc.msg}") from exc


def verify_webhook(run: Run, secrets: dict[str, str]) -> None:
    signing_secret = secrets["webhook_secret"]
    received = {"X-MeshHook-Signature": "sha256=" + "0" * 64, "Authorization": f"Bearer {secrets['jwt']}"}
    if received["X-MeshHook-Signature"] != signing_secret:
        raise SignatureMismatch(f"signature mismatch for webhook of {run.workflow_id} from tenant {run.tenant}")


def renew_lease(run: Run, secrets: dict[str, str]) -> None:
    database_url = f"postgresql://meshhook:{secrets['db_password']}@db.internal.example:5432/meshhook"
    lease = {"run_id": run.run_id, "holder": "orchestrator-2", "db": database_url, "aws_key": secrets["aws"]}
    raise LeaseLostError(f"lease on {lease['run_id']} lost to orchestrator-3 after 30s without heartbeat")


# --- the components -----------------------------------------------------------------------------------------


def _api(run: Run, rng: random.Random, secrets: dict[str, str]) -> None:
    with sdk.workflow_scope(
        run.workflow_id,
        run.run_id,
        step_id="receive-webhook",
        step_type="trigger",
        tenant=run.tenant,
        workflow_version=str(run.workflow_version),
        attempt=1,
    ):
        sentry_sdk.add_breadcrumb(
            category="http", message=f"POST /hooks/{run.workflow_id}?sig={secrets['query_token']}", level="info"
        )
        roll = rng.random()
        if roll < 0.45:
            try:
                verify_webhook(run, secrets)
            except SignatureMismatch:
                log.exception("rejected webhook for %s", run.workflow_id)
        elif roll < 0.7:
            log.error(
                "webhook delivery to %s failed for tenant %s",
                f"https://api.partner.example/callback?access_token={secrets['github']}",
                run.tenant,
            )


def _orchestrator(run: Run, rng: random.Random, secrets: dict[str, str]) -> None:
    with sdk.workflow_scope(
        run.workflow_id,
        run.run_id,
        tenant=run.tenant,
        workflow_version=str(run.workflow_version),
        queue="runs",
        job_id=f"job-{run.run_id[4:]}",
    ):
        with sdk.step_scope("schedule", step_type="control"):
            pass
        if rng.random() < 0.5:
            with sdk.step_scope("renew-lease", step_type="control", attempt=2):
                try:
                    renew_lease(run, secrets)
                except LeaseLostError:
                    log.exception("run %s abandoned", run.run_id)
        elif rng.random() < 0.3:
            sdk.capture_message(f"run {run.run_id} exceeded its retry budget (5 attempts)", level="warning")


def _http_executor(run: Run, rng: random.Random, secrets: dict[str, str]) -> None:
    with sdk.workflow_scope(
        run.workflow_id,
        run.run_id,
        tenant=run.tenant,
        workflow_version=str(run.workflow_version),
        queue="http",
        job_id=f"job-{run.run_id[4:]}",
    ):
        roll = rng.random()
        if roll < 0.4:
            attempt = rng.randint(1, 3)
            with sdk.step_scope("post-order", step_type="http", attempt=attempt):
                try:
                    call_target(run, secrets, attempt)
                except TargetHTTPError as exc:
                    sdk.capture_exception(exc)
        elif roll < 0.65:
            with sdk.step_scope("sync-contact", step_type="http", attempt=1):
                try:
                    call_crm(run, secrets)
                except TimeoutError as exc:
                    sdk.capture_exception(exc)
        elif roll < 0.85:
            with sdk.step_scope("map-order", step_type="transform", attempt=1):
                try:
                    transform_payload(run, secrets)
                except TransformError as exc:
                    sdk.capture_exception(exc)


STEPS: dict[str, Callable[[Run, random.Random, dict[str, str]], None]] = {
    "api": _api,
    "orchestrator": _orchestrator,
    "http-executor": _http_executor,
}


def run_component(component: str, dsn: str, *, runs: int, seed: int, crash: bool, spool_dir: str | None) -> None:
    """Run ``runs`` synthetic workflow runs as ``component``; with ``crash``, end in an unhandled fatal error."""
    rng = random.Random(f"{seed}-{component}")
    secrets = planted_secrets(seed)
    logging.basicConfig(level=logging.WARNING, format=f"{component}: %(levelname)s %(message)s")
    sdk.init(dsn, component=component, environment="demo", release=RELEASE, spool_dir=spool_dir)
    sentry_sdk.set_user({"id": f"svc-{component}", "email": f"{component}@meshhook.example"})
    for _ in range(runs):
        workflow_id, version = rng.choice(WORKFLOWS)
        run = Run(workflow_id, version, f"run_{rng.getrandbits(48):012x}", rng.choice(TENANTS))
        STEPS[component](run, rng, secrets)
        time.sleep(0.005)
    sdk.flush(timeout=10)
    if crash:
        # Unhandled: reported by sys.excepthook as fatal, with the workflow context of the scope it escaped.
        workflow_id, version = rng.choice(WORKFLOWS)
        run = Run(workflow_id, version, f"run_{rng.getrandbits(48):012x}", rng.choice(TENANTS))
        with sdk.workflow_scope(
            run.workflow_id, run.run_id, step_id="checkpoint", step_type="control", tenant=run.tenant, attempt=1
        ):
            state = {"queue_checksum": rng.getrandbits(32), "api_token": secrets["stripe"]}
            raise RuntimeError(
                f"{component} state is corrupt: run queue checksum {state['queue_checksum']:08x} mismatch"
            )
