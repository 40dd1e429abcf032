"""``stackwatch.sdk.init``: defaults and overrides, the DSN, the component tag, uncaught errors of every kind, and
the hooks' promise never to raise and never to send what they could not scrub.

sentry-sdk's state is process-global, so whatever needs ``init`` runs in a component process of its own
(``tests/sdk_component.py``) that sends to a local recording server; the hooks are also exercised directly.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import stackwatch.sdk
from stackwatch.scrub import ScrubOptions
from stackwatch.sdk import hooks
from stackwatch.sdk.hooks import Hooks, secret_params
from tests.sdk_support import Recorder, by_message, mechanism, recording, run_component


@pytest.fixture
def recorder() -> Any:
    with recording() as running:
        yield running


def suffix() -> str:
    return uuid.uuid4().hex[:8]


# -- the public surface ---------------------------------------------------------------------------------------------


def test_public_api() -> None:
    assert sorted(stackwatch.sdk.__all__) == [
        "capture_exception",
        "capture_message",
        "current_workflow",
        "flush",
        "init",
        "instrument_asyncio",
        "step_scope",
        "workflow_scope",
    ]
    assert all(callable(getattr(stackwatch.sdk, name)) for name in stackwatch.sdk.__all__)


def test_the_sdk_does_not_import_the_server() -> None:
    code = (
        "import sys, stackwatch.sdk, stackwatch.sdk.transport; print(sorted(m for m in sys.modules if 'server' in m))"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "stackwatch.server" not in child.stdout, child.stdout


@pytest.mark.slow
def test_a_wrong_option_fails_at_init_and_leaves_no_sender_thread(tmp_path: Path) -> None:
    code = (
        "import threading, time, stackwatch.sdk\n"
        "try:\n"
        f"    stackwatch.sdk.init('http://k@127.0.0.1:9/1', component='api', spool_dir={str(tmp_path)!r}, no_such=1)\n"
        "except TypeError as error:\n"
        "    for _ in range(100):  # the sender was told to stop; give it up to 5 s\n"
        "        if threading.active_count() == 1:\n"
        "            break\n"
        "        time.sleep(0.05)\n"
        "    print(error, sorted(t.name for t in threading.enumerate()))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert child.stdout.strip() == "Unknown option 'no_such' ['MainThread']", child.stdout + child.stderr


@pytest.mark.parametrize("component", ["", "   ", None, 3])
def test_component_is_required(component: Any) -> None:
    with pytest.raises(ValueError, match="component"):
        stackwatch.sdk.init("http://key@127.0.0.1:9/1", component=component)


# -- defaults and overrides -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_defaults(tmp_path: Path, recorder: Recorder) -> None:
    result = run_component("options", tmp_path / "spool", dsn=recorder.dsn()).result
    assert result["active"] and result["dsn"] == recorder.dsn()
    assert result["send_default_pii"] is False
    assert (result["include_local_variables"], result["max_request_body_size"]) == (True, "never")
    assert result["event_scrubber"] == "EventScrubber"  # sentry-sdk's own scrubber stays on
    assert result["transport"] == "SpoolTransport"
    assert (result["spool_dir"], result["max_bytes"]) == (str(tmp_path / "spool"), 100 * 1024 * 1024)
    assert {"logging", "threading", "excepthook", "dedupe", "atexit"} <= set(result["integrations"])
    assert "asyncio" not in result["integrations"]  # no loop was running at init
    assert all(name.startswith("Hooks.") for name in result["hooks"].values()), result["hooks"]
    assert result["global_tags"] == {"component": "orchestrator"}


@pytest.mark.slow
def test_overrides(tmp_path: Path, recorder: Recorder) -> None:
    init = {
        "component": "http-executor",
        "include_local_variables": False,
        "max_request_body_size": "small",
        "send_default_pii": True,
        "spool_dir": str(tmp_path / "elsewhere"),
        "spool_max_bytes": 2_000_000,
    }
    result = run_component("options", tmp_path / "spool", dsn=recorder.dsn(), data={"init": init}).result
    assert result["send_default_pii"] is True
    assert (result["include_local_variables"], result["max_request_body_size"]) == (False, "small")
    assert (result["spool_dir"], result["max_bytes"]) == (str(tmp_path / "elsewhere"), 2_000_000)
    assert result["global_tags"] == {"component": "http-executor"}


@pytest.mark.slow
def test_the_caller_can_bring_a_transport(tmp_path: Path) -> None:
    code = (
        "import sentry_sdk, stackwatch.sdk\n"
        "sent = []\n"
        "stackwatch.sdk.init('http://k@127.0.0.1:9/1', component='api', transport=lambda event: sent.append(event))\n"
        "stackwatch.sdk.capture_message('hello')\n"
        "print(type(sentry_sdk.get_client().transport).__name__, [e['tags'] for e in sent])\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert child.stdout.strip() == "_FunctionTransport [{'component': 'api'}]", child.stdout + child.stderr


# -- the DSN and the component tag ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["STACKWATCH_DSN", "SENTRY_DSN"])
def test_dsn_from_the_environment(tmp_path: Path, recorder: Recorder, variable: str) -> None:
    run = suffix()
    child = run_component("message", tmp_path / "spool", data={"suffix": run}, env={variable: recorder.dsn()})
    event = by_message(recorder.wait_events(1), f"hello from the orchestrator {run}")
    assert event["event_id"] == child.result["event_id"]
    assert event["tags"]["component"] == "orchestrator"


@pytest.mark.slow
def test_stackwatch_dsn_wins_over_sentry_dsn(tmp_path: Path, recorder: Recorder) -> None:
    with recording() as other:
        env = {"STACKWATCH_DSN": recorder.dsn(), "SENTRY_DSN": other.dsn()}
        run_component("message", tmp_path / "spool", data={"suffix": suffix()}, env=env)
        recorder.wait_events(1)
        assert other.snapshot() == []


@pytest.mark.slow
def test_without_a_dsn_reporting_is_off_with_one_warning(tmp_path: Path) -> None:
    result = run_component("no_dsn", tmp_path / "spool").result
    assert len(result["warnings"]) == 1 and "no DSN" in result["warnings"][0], result["warnings"]
    assert result["event_id"] is None and result["active_transport"] is None


@pytest.mark.slow
def test_the_applications_before_send_runs_first(tmp_path: Path, recorder: Recorder) -> None:
    run, secret = suffix(), "pw" + uuid.uuid4().hex
    result = run_component("user_hooks", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run, "secret": secret})
    assert result.result["seen_by_app"] == [f"keep me {run}", f"drop me {run}"]
    event = by_message(recorder.wait_events(1), f"keep me {run}")
    # What the application's hook added was scrubbed afterwards; the event it dropped never left.
    assert event["extra"]["added_by_app"] == "https://ops:[Filtered:url_credentials]@internal.test/"
    assert all(f"drop me {run}" not in str(e) for e in recorder.events())


# -- uncaught errors ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_uncaught_exception_is_fatal(tmp_path: Path, recorder: Recorder) -> None:
    run = suffix()
    child = run_component("crash", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run}, returncode=1)
    assert f"RuntimeError: orchestrator crashed {run}" in child.stderr  # the default excepthook still runs
    event = by_message(recorder.wait_events(1), f"orchestrator crashed {run}")
    assert event["level"] == "fatal"
    assert mechanism(event) == {"type": "excepthook", "handled": False}


@pytest.mark.slow
def test_thread_exception(tmp_path: Path, recorder: Recorder) -> None:
    run = suffix()
    run_component("thread", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    event = by_message(recorder.wait_events(1), f"missing step output {run}")
    assert (event["level"], mechanism(event)) == ("error", {"type": "threading", "handled": False})


@pytest.mark.slow
def test_logging_error_and_exception(tmp_path: Path, recorder: Recorder) -> None:
    token = uuid.uuid4().hex
    data = {"suffix": suffix(), "url": f"https://partner.test/hook?token={token}", "order": "ord-77"}
    run_component("logging_error", tmp_path / "spool", dsn=recorder.dsn(), data=data)
    events = recorder.wait_events(2)
    call = by_message(events, "call failed: https://partner.test/hook?token=[Filtered:secret_param] (order ord-77)")
    assert call["logger"] == "meshhook.orchestrator" and call["level"] == "error"
    assert call["logentry"]["params"] == ["https://partner.test/hook?token=[Filtered:secret_param]", "ord-77"]
    lookup = by_message(events, "lookup failed for order ord-77")
    assert lookup["exception"]["values"][-1]["type"] == "KeyError"
    assert token not in str(events)


@pytest.mark.slow
def test_asyncio_task_exception_nobody_retrieved(tmp_path: Path, recorder: Recorder) -> None:
    run = suffix()
    run_component("asyncio_unretrieved", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    event = by_message(recorder.wait_events(1), f"task died unretrieved {run}")
    assert event["logger"] == "asyncio"
    assert mechanism(event) == {"type": "asyncio", "handled": False}


@pytest.mark.slow
def test_instrument_asyncio_reports_task_errors_once_with_their_scope(tmp_path: Path, recorder: Recorder) -> None:
    run = suffix()
    child = run_component("asyncio_instrumented", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    assert child.result == {"instrumented": True, "outside_loop": False}
    events = recorder.wait_events(1)
    event = by_message(events, f"task died instrumented {run}")  # exactly one, although the loop logged it too
    assert mechanism(event) == {"type": "asyncio", "handled": False}
    assert (event["tags"]["workflow_id"], event["tags"]["run_id"]) == ("wf_async", f"run_async_{run}")


@pytest.mark.slow
def test_init_inside_a_running_loop_enables_the_asyncio_integration(tmp_path: Path, recorder: Recorder) -> None:
    run = suffix()
    child = run_component("asyncio_init_in_loop", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    assert "asyncio" in child.result["integrations"]
    event = by_message(recorder.wait_events(1), f"task died after init in loop {run}")
    assert mechanism(event) == {"type": "asyncio", "handled": False}


# -- the hooks, directly ----------------------------------------------------------------------------------------------


def make_hooks(**kwargs: Any) -> Hooks:
    return Hooks(component="api", scrub_options=ScrubOptions(), **kwargs)


def error_event(**fields: Any) -> dict[str, Any]:
    event = {"event_id": uuid.uuid4().hex, "level": "error", "platform": "python", "timestamp": "2030-01-01T00:00:00Z"}
    event.update(fields)
    return event


def test_frozen_interpreter_frames_are_not_in_app() -> None:
    frames = [
        {"abs_path": "<frozen runpy>", "module": "runpy", "function": "_run_code", "in_app": True},
        {"abs_path": "/srv/meshhook/orchestrator.py", "module": "orchestrator", "function": "main", "in_app": True},
    ]
    event = error_event(exception={"values": [{"type": "RuntimeError", "stacktrace": {"frames": frames}}]})
    sent = make_hooks().before_send(event, {})
    assert [f["in_app"] for f in sent["exception"]["values"][0]["stacktrace"]["frames"]] == [False, True]


def test_request_details_are_dropped_and_recorded() -> None:
    request = {
        "url": "https://api.test/hook?token=abcdef123456&order=ord-1",
        "headers": {"X-Trace": "1"},
        "cookies": "a=b",
        "data": {"order": "ord-1"},
        "method": "POST",
    }
    sent = make_hooks().before_send(error_event(request=copy.deepcopy(request)), {})
    assert sent["request"] == {
        "url": "https://api.test/hook?token=[Filtered:secret_param]&order=ord-1",
        "method": "POST",
    }
    assert sent["_meta"]["request"]["data"] == {"": {"rem": [["!config", "x"]]}}
    assert set(sent["_meta"]["request"]) == {"data", "headers", "cookies", "url"}
    assert sent["tags"] == {"component": "api"}

    kept = make_hooks(keep_request_details=True).before_send(error_event(request=copy.deepcopy(request)), {})
    assert kept["request"]["data"] == {"order": "ord-1"} and kept["request"]["headers"] == {"X-Trace": "1"}


def test_a_field_that_cannot_be_scrubbed_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hooks.scrub_event

    def failing(event: Any, options: Any = None) -> dict[str, Any]:
        if "extra" in event:
            raise RuntimeError("engine failure")
        return real(event, options)

    monkeypatch.setattr(hooks, "scrub_event", failing)
    event = error_event(message="token=abcdef123456", extra={"anything": "sk_live_abcdefghijklmnop"})
    sent = make_hooks().before_send(event, {})
    assert "extra" not in sent
    assert sent["_meta"]["extra"] == {"": {"rem": [["!stackwatch.scrub_error", "x"]]}}
    assert sent["message"] == "token=[Filtered:secret_param]" and sent["event_id"] == event["event_id"]


def test_when_the_engine_fails_entirely_the_event_keeps_only_protocol_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(event: Any, options: Any = None) -> dict[str, Any]:
        raise RuntimeError("engine failure")

    monkeypatch.setattr(hooks, "scrub_event", failing)
    event = error_event(message="sk_live_abcdefghijklmnop", type="error")
    sent = make_hooks().before_send(event, {})
    assert set(sent) == {"event_id", "timestamp", "platform", "type", "level", "tags", "_meta"}, sent
    assert sent["tags"] == {"component": "api"}


def test_hooks_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    def broken(item: Any, hint: Any) -> Any:
        raise ValueError("application bug")

    own = make_hooks(user_before_send=broken, user_before_breadcrumb=broken)
    with caplog.at_level(logging.WARNING, logger="stackwatch.sdk"):
        assert own.before_send(error_event(), {}) is None  # dropped, as sentry-sdk does
        assert own.before_breadcrumb({"message": "x"}, {}) is None
    assert make_hooks().before_send("not an event", {}) is None
    assert make_hooks().before_breadcrumb(None, {}) is None
    assert "application's before_send raised" in caplog.text


def test_breadcrumbs_are_scrubbed_in_memory_and_their_meta_reaches_the_event() -> None:
    own = make_hooks()
    record = logging.LogRecord(
        "app", logging.INFO, __file__, 1, "retry with token %s for %s", ("opaque", "ord-9"), None
    )
    crumb = own.before_breadcrumb(
        {"message": record.getMessage(), "category": "app", "data": {"api_key": "k-1", "order": "ord-9"}},
        {"log_record": record},
    )
    assert crumb["message"] == "retry with token [Filtered] for ord-9"
    assert crumb["data"] == {"api_key": "[Filtered]", "order": "ord-9"}
    sent = own.before_send(error_event(breadcrumbs={"values": [crumb]}), {})
    assert "_stackwatch_meta" not in sent["breadcrumbs"]["values"][0]
    crumb_meta = sent["_meta"]["breadcrumbs"]["values"]["0"]
    assert crumb_meta["data"]["api_key"][""]["rem"] == [["api_key", "x"]]
    assert crumb_meta["message"][""]["rem"] == [["token", "s"]]


def test_transactions_are_scrubbed_too() -> None:
    transaction = error_event(
        type="transaction",
        transaction="POST /hooks/{id}",
        request={"url": "https://api.test/hooks/1?sig=abcdef123456", "headers": {"Authorization": "Bearer x"}},
        spans=[{"op": "http.client", "description": "GET https://u:pw123456@partner.test/orders", "data": {}}],
    )
    sent = make_hooks().before_send_transaction(transaction, {})
    assert sent["spans"][0]["description"] == "GET https://u:[Filtered:url_credentials]@partner.test/orders"
    assert sent["request"] == {"url": "https://api.test/hooks/1?sig=[Filtered:secret_param]"}
    assert sent["tags"] == {"component": "api"} and sent["type"] == "transaction"


def test_logs_and_metrics_are_scrubbed() -> None:
    own = make_hooks()
    log = {"body": "GET https://x.test/?token=abcdef123456", "attributes": {"api_key": "k-1", "n": 2}, "trace_id": "t"}
    assert own.before_send_log(log, {}) == {
        "body": "GET https://x.test/?token=[Filtered:secret_param]",
        "attributes": {"api_key": "[Filtered]", "n": 2},
        "trace_id": "t",
    }
    metric = {"name": "calls", "value": 1.0, "attributes": {"url": "https://u:pw123456@h.test/"}}
    assert own.before_send_metric(metric, {})["attributes"] == {"url": "https://u:[Filtered:url_credentials]@h.test/"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("token %s", {0: "token"}),
        ("call %s with password=%r", {1: "password"}),
        ('{"api_key": "%s", "order": "%s"}', {0: "api_key"}),
        ("Authorization: %s", {0: "auth"}),
        ("100%% done for %s", {}),
        ("order %s failed after %d attempts", {}),
        ("session %(id)s", {0: "session"}),
        ("login with credentials %s %s", {0: "credential", 1: "credential"}),
        ("creds %s:%s rejected for %s", {0: "creds", 1: "creds"}),
        ("token %s/%s", {0: "token", 1: "token"}),
        ("pаssword=%s", {0: "password"}),  # a Cyrillic "а"
        ("ＴＯＫＥＮ %s", {0: "token"}),
        ("user %s %s", {}),
        ("token %s for order %s", {0: "token"}),
    ],
)
def test_secret_logging_arguments(template: str, expected: dict[int, str]) -> None:
    assert secret_params(template) == expected
