"""No secret leaves a component that uses ``@stackwatch/sdk``: not in the bytes on the wire, not in its spool
files, not in what the server stores and serves.

A MeshHook-shaped HTTP executor (``clients/js/test/support/leak-component.mjs``, on the real ``@sentry/node`` of
``clients/js``) receives a webhook request carrying planted secrets (fresh random values) in its authorization,
cookie, signature and custom headers, its query string and its JSON body, and fails a step with secrets in the
error message and its ``cause``, breadcrumbs (a URL with credentials, a bearer header), console arguments, tags,
contexts, extra and the user. Its DSN points at a local recording server while that server refuses everything,
so every envelope waits in the spool: the spool files are searched. A second process on the same spool then
delivers them through the recorder to a real Stackwatch server; the test looks for each secret in the decoded
request bodies and in everything the REST API returns, and checks that the identifiers a developer needs
(workflow, run, order, correlation id, the user id) and ``_meta``'s account of what was removed did arrive, so
that a component that sent nothing could not pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NODE_KEY, ROOT, ServerFactory, skip_or_fail
from tests.leak_support import everything_served, leaked, meta_rules, planted_scenario
from tests.sdk_support import recording

pytestmark = pytest.mark.slow

JS = ROOT / "clients" / "js"
COMPONENT = JS / "test" / "support" / "leak-component.mjs"


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, with ``clients/js``'s dependencies installed (``make check`` installs them)."""
    found = shutil.which("node")
    if found is None:
        skip_or_fail("node", "node is needed for the @stackwatch/sdk leak test")
    if not (JS / "node_modules" / "@sentry" / "node" / "package.json").exists():
        skip_or_fail("node", "clients/js/node_modules is missing: run `make check` (npm ci in clients/js)")
    assert found is not None
    return found


def run(node: str, scenario: str, spool: Path, dsn: str, data: dict[str, Any], **env: str) -> dict[str, Any]:
    input_path = spool.parent / f"input-{uuid.uuid4().hex[:8]}.json"
    input_path.write_text(json.dumps(data))
    child_env = {k: v for k, v in os.environ.items() if k not in ("STACKWATCH_DSN", "SENTRY_DSN")}
    child_env.update(STACKWATCH_DSN=dsn, STACKWATCH_SPOOL_DIR=str(spool), SDK_TEST_INPUT=str(input_path), **env)
    done = subprocess.run(
        [node, str(COMPONENT), scenario], capture_output=True, text=True, timeout=90, env=child_env, check=False
    )
    assert done.returncode == 0, f"{scenario} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_no_secret_leaves_a_javascript_component(node: str, start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server()
    data, markers = planted_scenario()
    suffix, order, correlation = data["suffix"], data["order"], data["correlation"]
    spool = tmp_path / "spool"
    spool.mkdir()
    with recording(upstream=server.base_url) as recorder:
        dsn = recorder.dsn(project_id=2, key=NODE_KEY)
        recorder.refusing = True
        captured = run(node, "capture", spool, dsn, data, SDK_TEST_FLUSH_MS="1500")
        assert captured["flushed"] is False, "nothing can be delivered while the server refuses"
        files = [path for path in spool.rglob("*") if path.is_file()]
        envelopes = [path for path in files if path.name.endswith(".envelope")]
        assert len(envelopes) >= 2, f"the captures wait in the spool: {files}"
        at_rest = b"".join(path.read_bytes() for path in files)
        assert leaked(at_rest, markers) == [], "a planted secret was written to the spool"
        assert order.encode() in at_rest

        recorder.refusing = False
        assert run(node, "replay", spool, dsn, {})["flushed"] is True
        assert not [path for path in spool.rglob("*.envelope")], "the replay delivered every envelope"
        requests = recorder.snapshot()
        wire = b"\n".join(request.decoded for request in requests)
        events = recorder.events()

    assert requests, "the component sent nothing"
    assert leaked(wire, markers) == [], "a planted secret left the process"
    for identifier in (f"wf_{suffix}", f"run_{suffix}", order, correlation, "user-42"):
        assert identifier.encode() in wire, f"{identifier} never reached the server"
    ids = captured["ids"]
    by_id = {event["event_id"]: event for event in events}
    assert set(ids.values()) <= set(by_id), (ids, list(by_id))
    assert len(events) == len(by_id), "no event was sent twice"
    exception = by_id[ids["exception"]]
    assert exception["tags"]["component"] == "http-exec"
    assert exception["tags"]["workflow_id"] == f"wf_{suffix}"
    assert exception["tags"]["attempt"] == "2"
    assert exception["contexts"]["workflow"]["step_id"] == "charge"
    assert exception["user"] == {"id": "user-42"}
    rules = meta_rules(exception["_meta"])
    expected = {
        ("tags.callback_url", "secret_param"),
        ("contexts.partner.signing_pem", "pem_private_key"),
        ("extra.aws", "aws_access_key"),
        ("extra.payment.iban", "iban"),
        ("extra.payment.card", "card_number"),
    }
    assert expected <= rules, f"missing from _meta: {sorted(expected - rules)} in {sorted(rules)}"
    request = exception.get("request") or {}
    assert "data" not in request and "cookies" not in request
    assert set(request.get("headers") or {}) <= {"content-type", "host", "accept", "x-request-id", "content-length"}
    assert any(path.startswith("breadcrumbs.") for path, _rule in rules), sorted(rules)

    server.wait_digested(timeout=30)
    served, details = everything_served(server, "node")
    assert leaked(served, markers) == [], "the REST API serves a planted secret"
    assert {ids["exception"], ids["message"]} <= {detail["event_id"] for detail in details}
    stored = next(detail for detail in details if detail["event_id"] == ids["exception"])
    assert (stored["workflow_id"], stored["run_id"], stored["component"]) == (
        f"wf_{suffix}",
        f"run_{suffix}",
        "http-exec",
    )
    for identifier in (f"wf_{suffix}", order, correlation):
        assert identifier in served, f"{identifier} is missing from what the REST API serves"
