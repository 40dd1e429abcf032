"""No secret leaves a component that uses ``stackwatch.sdk``: not in the bytes on the wire, not in what the server
stores and serves.

A component process plants a dozen kinds of secret (each a fresh random value) in every place an event picks data
up from: nested frame variables, exception messages and their causes, URLs in messages, breadcrumb messages and
data, logging arguments and extras, tags, contexts, extra, the user and a request.  Its DSN points at a local
recording server that keeps every byte it receives and forwards it to a real Stackwatch server.  The test then
looks for each secret in the decoded request bodies and in everything the REST API returns, and checks that the
identifiers a developer needs (workflow, run, order, correlation id) did arrive, and that ``_meta`` says what was
removed, so that a component that sent nothing at all could not pass.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.leak_support import everything_served, leaked, meta_rules, plant_secrets
from tests.scrub_vectors import GAP_EVENTS, GAP_KEYS, GAP_STRINGS, forbidden
from tests.sdk_support import Recorder, by_message, recording, run_component

pytestmark = pytest.mark.slow


def test_no_secret_leaves_the_component(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server()
    values, markers = plant_secrets()
    suffix = uuid.uuid4().hex[:8]
    order = f"ord-{secrets.randbelow(10**6):06d}"
    correlation = str(uuid.uuid4())
    data = {
        "suffix": suffix,
        "order": order,
        "correlation": correlation,
        "secrets": values,
        "url_with_token": f"https://api.partner.test/v1/orders/{order}?token={values['query_token']}&page=2",
    }
    with recording(upstream=server.base_url) as recorder:
        child = run_component("leaks", tmp_path / "spool", dsn=recorder.dsn(), data=data, returncode=1)
        ids = child.result["ids"]
        events = recorder.wait_events(5)
        wire = _check_the_wire(recorder, markers, tmp_path / "spool")

    # What was sent is useful: the identifiers arrived, and ``_meta`` says what was removed and by which rule.
    for identifier in (f"wf_{suffix}", f"run_{suffix}", order, correlation, "user-42"):
        assert identifier.encode() in wire, f"{identifier} never reached the server"
    assert f"worker crashed with AWS key [Filtered:aws_access_key] for {order}".encode() in wire
    _check_meta(events, ids, order)

    # What the server stores and serves: nothing secret, the identifiers all there.
    server.wait_digested(timeout=30)
    served, details = everything_served(server)
    assert leaked(served, markers) == [], "the REST API serves a planted secret"
    stored_ids = {detail["event_id"] for detail in details}
    assert {ids["exception"], ids["message"]} <= stored_ids, (ids, stored_ids)
    assert len(details) >= 5
    for identifier in (f"wf_{suffix}", f"run_{suffix}", order, correlation):
        assert identifier in served, f"{identifier} is missing from what the REST API serves"
    exception = next(detail for detail in details if detail["event_id"] == ids["exception"])
    assert (exception["workflow_id"], exception["run_id"], exception["component"]) == (
        f"wf_{suffix}",
        f"run_{suffix}",
        "orchestrator",
    )
    assert "[Filtered:stripe_key]" in exception["data"]["exception"]["values"][-1]["value"]
    stored_rules = meta_rules(exception["data"]["_meta"])  # the server keeps what the SDK recorded
    assert {("request.data", "!config"), ("exception.values.1.value", "stripe_key")} <= stored_rules


def _check_the_wire(recorder: Recorder, markers: list[str], spool: Path) -> bytes:
    requests = recorder.snapshot()
    assert requests, "the component sent nothing"
    wire = b"\n".join(request.decoded for request in requests)
    assert leaked(wire, markers) == [], "a planted secret left the process"
    assert all(request.headers.get("content-encoding") == "gzip" for request in requests)
    at_rest = b"".join(path.read_bytes() for path in spool.rglob("*") if path.is_file())
    assert leaked(at_rest, markers) == [], "a planted secret was written to the spool"
    return wire


def _check_meta(events: list[dict[str, Any]], ids: dict[str, str], order: str) -> None:
    exception = next(event for event in events if event["event_id"] == ids["exception"])
    rules = meta_rules(exception["_meta"])
    paths = {path for path, _rule in rules}
    expected = {
        ("exception.values.1.value", "stripe_key"),  # the ConnectionError raised from the PermissionError
        ("exception.values.0.value", "jwt"),
        ("request.data", "!config"),
        ("request.headers", "!config"),
        ("request.cookies", "!config"),
        ("user.data.session_token", "token"),
        ("user.data.note", "github_token"),
        ("tags.callback_url", "secret_param"),
        ("contexts.partner.signing_pem", "pem_private_key"),
        ("extra.aws", "aws_access_key"),
        ("extra.payment.iban", "iban"),
        ("extra.payment.card", "card_number"),
    }
    assert expected <= rules, f"missing from _meta: {sorted(expected - rules)} in {sorted(rules)}"
    assert any(p.startswith("exception.values.1.stacktrace.frames.") and p.endswith(".vars.password") for p in paths)
    assert any(p.endswith(".vars.config.stripe.api_key") for p in paths), sorted(paths)
    crumbs = {rule for path, rule in rules if path.startswith("breadcrumbs.values.")}
    assert {"bearer", "webhook_secret", "url_credentials", "token"} & crumbs, crumbs

    logged = by_message(events, f"refresh with token [Filtered] failed for order {order}")
    assert logged["logentry"]["params"] == ["[Filtered]", order]
    assert ("logentry.params.0", "token") in meta_rules(logged["_meta"])
    assert logged["extra"]["password"] == "[Filtered]"
    assert logged["tags"]["run_id"].startswith("run_")

    call = by_message(events, "call failed: https://api.partner.test/v1/orders/")
    assert "token=[Filtered:secret_param]" in call["logentry"]["formatted"]
    assert "[Filtered:github_token]" in call["logentry"]["params"][2]


def _subset(sent: Any, expected: Any) -> bool:
    """``expected`` is in ``sent``: dicts key by key (the SDK adds ``component``, ``sys.argv``, ...), else equal."""
    if isinstance(expected, dict) and isinstance(sent, dict):
        return all(key in sent and _subset(sent[key], value) for key, value in expected.items())
    return bool(sent == expected)


def test_the_gap_vectors_never_leave_the_component(tmp_path: Path) -> None:
    """The vectors for the audit's gaps, planted by a real component in ``extra``, tags, breadcrumbs, logging
    arguments, dict keys and whole events: what it sends holds exactly the expected values and none of their
    secrets, on the wire and in the spool."""
    data = {
        "strings": [case["input"] for case in GAP_STRINGS],
        "keys": [[case["input"]["key"], case["input"]["value"]] for case in GAP_KEYS],
        "events": [case["input"]["event"] for case in GAP_EVENTS],
    }
    with recording() as recorder:
        child = run_component("vectors", tmp_path / "spool", dsn=recorder.dsn(), data=data)
        ids = child.result["ids"]
        events = recorder.wait_events(2 * len(GAP_STRINGS) + len(GAP_KEYS) + len(GAP_EVENTS), timeout=60)
        wire = _check_the_wire(recorder, forbidden(GAP_STRINGS + GAP_KEYS + GAP_EVENTS), tmp_path / "spool")
    by_id = {event["event_id"]: event for event in events}
    failures = []
    for i, case in enumerate(GAP_STRINGS):
        event, expected = by_id[ids[f"s{i}"]], case["expected"]
        logged = by_message(events, f"vector s{i}: ")
        checks = {
            "extra": event["extra"]["v"] == expected,
            "breadcrumb": event["breadcrumbs"]["values"][-1]["message"] == expected,
            "tag": len(case["input"]) > 200 or event["tags"]["v"] == expected,
            "logging argument": logged["logentry"]["params"][1] == expected,
        }
        failures += [f"{case['name']}: {where}" for where, ok in checks.items() if not ok]
    for i, case in enumerate(GAP_KEYS):
        if by_id[ids[f"k{i}"]]["extra"].get(case["input"]["key"]) != case["expected"]:
            failures.append(f"{case['name']}: {by_id[ids[f'k{i}']]['extra']}")
    for i, case in enumerate(GAP_EVENTS):
        if "_meta" in case["input"]["event"]:
            continue  # sentry-sdk writes an event's ``_meta`` itself: a client's own is the server's concern
        # The SDK drops request headers, cookies and bodies before scrubbing (``keep_request_details``).
        expected = {k: v for k, v in case["expected"].items() if k not in ("message", "request")}
        expected["_meta"] = {k: v for k, v in expected.get("_meta", {}).items() if k != "request"}
        if not _subset(by_id[ids[f"e{i}"]], expected):
            failures.append(f"{case['name']}: {json.dumps({k: by_id[ids[f'e{i}']].get(k) for k in expected})}")
    assert failures == [], "\n".join(failures)
    assert b"vector s0" in wire
