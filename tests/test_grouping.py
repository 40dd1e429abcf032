"""Grouping: which events are one issue (unit tests that hold for every version, and end to end through ingest).

Tests of version 1 specifics pin ``version=1``; version 2's own tests are in tests/test_grouping_v2.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stackwatch.server.digest.grouping import CURRENT, grouping_hash
from stackwatch.server.digest.grouping.parameterize import parameterize
from stackwatch.server.storage.schema import issues
from tests import support
from tests.conftest import Stack
from tests.support import exception_event, frame, message_event, normalized


def hash_of(raw: dict[str, Any], version: int = CURRENT) -> str:
    return grouping_hash(normalized(raw), version)


def with_frames(frames: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return exception_event(frames=frames, **fields)


BASE_FRAMES = [
    frame("handle", "    process(job)", lineno=10),
    frame("process", "    raise ValueError('bad value')", lineno=20),
]


# --- parameterize -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("user 42 not found", "user <int> not found"),
        ("took 3.14 s", "took <int> s"),
        ("run_42 failed", "run_<int> failed"),
        ("order-17 missing", "order-<int> missing"),
        ("utf8 codec failed with E1001", "utf8 codec failed with E1001"),
        ("job 3f2a1c9e-1234-4abc-8def-0123456789ab done", "job <uuid> done"),
        ("job 3F2A1C9E12344ABC8DEF0123456789AB done", "job <uuid> done"),
        ("mail to alice.smith+tag@example.co.uk bounced", "mail to <email> bounced"),
        ("GET https://api.example.com/v2/x?token=1&page=3 failed", "GET <url> failed"),
        ("from 10.0.0.1 port 8080", "from <ip> port <int>"),
        ("peer 2001:db8:0:0:0:0:2:1 reset", "peer <ip> reset"),
        ("peer fe80::1 reset", "peer <ip> reset"),
        ("bind ::1 failed", "bind <ip> failed"),
        ("peer 2001:db8::ff00:42:8329 reset", "peer <ip> reset"),
        ("std::vector overflow", "std::vector overflow"),
        ("at 2024-01-02T03:04:05.123Z", "at <date>"),
        ("on 2024-01-02", "on <date>"),
        ("at 12:30:01", "at <date>"),
        ("ptr 0xDEADBEEF", "ptr <hex>"),
        ("commit deadbeef12 broke it", "commit <hex> broke it"),
        ("no variable parts", "no variable parts"),
        ("", ""),
        (
            "user 42 at alice@example.com via https://x.io/a/7 id 3f2a1c9e12345678",
            "user <int> at <email> via <url> id <hex>",
        ),
    ],
)
def test_parameterize(message: str, expected: str) -> None:
    assert parameterize(message) == expected


def test_parameterize_replaces_a_url_whole_not_its_digits() -> None:
    assert parameterize("https://h.example/1/2/3") == "<url>"
    assert parameterize("see http://10.0.0.1:8080/x") == "see <url>"


def test_words_are_not_hex() -> None:
    # Eight letters a-f without a digit are a word, not an id.
    assert parameterize("facade deadbeef") == "facade deadbeef"


# --- stack traces -----------------------------------------------------------------------------------------


def test_moved_line_numbers_do_not_split_an_issue() -> None:
    moved = copy.deepcopy(BASE_FRAMES)
    for f in moved:
        f["lineno"] += 37
        f["colno"] = 5
    assert hash_of(with_frames(BASE_FRAMES)) == hash_of(with_frames(moved))


def test_value_does_not_matter_when_there_is_a_stack_trace() -> None:
    assert hash_of(with_frames(BASE_FRAMES, value="a")) == hash_of(with_frames(BASE_FRAMES, value="b"))


def test_other_call_path_is_another_issue() -> None:
    other = [frame("retry", "    process(job)", lineno=10), BASE_FRAMES[1]]
    assert hash_of(with_frames(BASE_FRAMES)) != hash_of(with_frames(other))


def test_other_exception_type_from_the_same_line_is_another_issue() -> None:
    assert hash_of(exception_event("ValueError")) != hash_of(exception_event("TypeError"))


def test_other_module_is_another_issue() -> None:
    other = copy.deepcopy(BASE_FRAMES)
    other[1]["module"] = "app.other"
    assert hash_of(with_frames(BASE_FRAMES)) != hash_of(with_frames(other))


def test_source_line_counts_for_python_and_javascript_only_in_version_1() -> None:
    # Version 2 reads JavaScript's source line only for frames without a function (tests/test_grouping_v2.py).
    edited = copy.deepcopy(BASE_FRAMES)
    edited[1]["context_line"] = "    raise ValueError(f'bad {value}')"
    for platform in ("python", "javascript", "node"):
        one, two = with_frames(BASE_FRAMES, platform=platform), with_frames(edited, platform=platform)
        assert hash_of(one, version=1) != hash_of(two, version=1)
    java_one, java_two = with_frames(BASE_FRAMES, platform="java"), with_frames(edited, platform="java")
    assert hash_of(java_one, version=1) == hash_of(java_two, version=1)


@pytest.mark.parametrize("version", [1, 2])
def test_source_line_counts_for_python_never_for_java(version: int) -> None:
    edited = copy.deepcopy(BASE_FRAMES)
    edited[1]["context_line"] = "    raise ValueError(f'bad {value}')"
    assert hash_of(with_frames(BASE_FRAMES), version) != hash_of(with_frames(edited), version)
    java_one, java_two = with_frames(BASE_FRAMES, platform="java"), with_frames(edited, platform="java")
    assert hash_of(java_one, version) == hash_of(java_two, version)


def test_only_in_app_frames_count_when_there_are_any() -> None:
    library = frame("dispatch", "    return fn()", module="framework.core", in_app=False)
    other_library = frame("call", "    return target()", module="otherlib", in_app=False)
    assert hash_of(with_frames([library, *BASE_FRAMES])) == hash_of(with_frames([other_library, *BASE_FRAMES]))
    assert hash_of(with_frames([library, *BASE_FRAMES])) == hash_of(with_frames(BASE_FRAMES))


def test_all_frames_count_when_none_is_in_app() -> None:
    frames = [{**f, "in_app": False} for f in BASE_FRAMES]
    library = frame("dispatch", "    return fn()", module="framework.core", in_app=False)
    assert hash_of(with_frames(frames)) != hash_of(with_frames([library, *frames]))
    unknown = [{k: v for k, v in f.items() if k != "in_app"} for f in BASE_FRAMES]
    assert hash_of(with_frames(unknown)) != hash_of(with_frames([library, *unknown]))


def test_in_app_frame_of_any_exception_in_the_chain_selects_in_app_only() -> None:
    library = frame("dispatch", "    return fn()", module="framework.core", in_app=False)
    other_library = frame("call", "    return target()", module="otherlib", in_app=False)

    def chained(lib: dict[str, Any]) -> dict[str, Any]:
        event = exception_event(frames=[lib])
        event["exception"]["values"].append(
            {"type": "RuntimeError", "value": "x", "stacktrace": {"frames": BASE_FRAMES}}
        )
        return event

    assert hash_of(chained(library)) == hash_of(chained(other_library))


def test_file_basename_stands_in_for_a_missing_module() -> None:
    def js(path: str, lineno: int) -> dict[str, Any]:
        return with_frames(
            [{"filename": path, "function": "handler", "lineno": lineno, "context_line": "x()", "in_app": True}],
            platform="javascript",
        )

    # Bundle content hashes and directories change on every deploy; the name does not.
    assert hash_of(js("/assets/App.3f2a1c9e.js", 1)) == hash_of(js("https://cdn.example/v2/app.77bb12ef.js", 9))
    assert hash_of(js("/assets/app.js", 1)) != hash_of(js("/assets/other.js", 1))


def test_function_names_are_normalized() -> None:
    def one(function: str) -> dict[str, Any]:
        return with_frames([frame(function, "    go()")])

    assert hash_of(one("<lambda>")) == hash_of(one("<lambda>.<locals>.inner"))
    assert hash_of(one("async handle")) == hash_of(one("handle"))
    assert hash_of(one("handle")) != hash_of(one("process"))


def test_without_stack_trace_type_and_parameterized_value_count() -> None:
    def bare(kind: str, value: str) -> dict[str, Any]:
        return {"event_id": support.new_id(), "exception": {"values": [{"type": kind, "value": value}]}}

    assert hash_of(bare("KeyError", "user 42 missing")) == hash_of(bare("KeyError", "user 97 missing"))
    assert hash_of(bare("KeyError", "user 42 missing")) != hash_of(bare("KeyError", "order 42 missing"))
    assert hash_of(bare("KeyError", "user 42 missing")) != hash_of(bare("LookupError", "user 42 missing"))


# --- messages ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("run 1234 failed after 3 attempts", "run 98 failed after 5 attempts"),
        ("lease lost: 6f1d2c3b-aaaa-4bbb-8ccc-0123456789ab", "lease lost: 00000000-1111-4222-8333-444444444444"),
        ("object deadbeef01 is stale", "object 0123abcd99 is stale"),
        ("no seat for alice@example.com", "no seat for bob@example.org"),
        ("webhook https://a.example/hook/1 timed out", "webhook http://b.example:8080/x?y=2 timed out"),
        ("peer 10.1.2.3 went away", "peer 192.168.0.254 went away"),
    ],
)
def test_messages_differing_only_in_variable_parts_group_together(one: str, two: str) -> None:
    assert hash_of(message_event(one)) == hash_of(message_event(two))


def test_different_messages_group_apart() -> None:
    assert hash_of(message_event("run 1 failed")) != hash_of(message_event("run 1 succeeded"))


def test_log_template_is_the_message_group() -> None:
    def logged(*params: Any) -> dict[str, Any]:
        formatted = "run %s exceeded max retries (%d)" % params  # noqa: UP031 - the SDK's format
        return message_event(
            "", logentry={"message": "run %s exceeded max retries (%d)", "params": list(params), "formatted": formatted}
        )

    assert hash_of(logged("run_1", 5)) == hash_of(logged("shipping", 7))
    assert hash_of(logged("run_1", 5)) != hash_of(message_event("run %s was cancelled"))


# --- fingerprints -----------------------------------------------------------------------------------------


def test_fingerprint_wins_over_the_stack_trace() -> None:
    other = [frame("elsewhere", "    boom()")]
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=["payments"])) == hash_of(
        with_frames(other, fingerprint=["payments"])
    )
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=["payments"])) != hash_of(
        with_frames(BASE_FRAMES, fingerprint=["shipping"])
    )
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=["payments"])) != hash_of(with_frames(BASE_FRAMES))


@pytest.mark.parametrize("marker", ["{{ default }}", "{{default}}"])
def test_default_in_a_fingerprint_expands_to_the_default_hash(marker: str) -> None:
    other = [frame("elsewhere", "    boom()")]
    acme = [marker, "tenant-acme"]
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=acme)) != hash_of(with_frames(other, fingerprint=acme))
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=acme)) != hash_of(
        with_frames(BASE_FRAMES, fingerprint=[marker, "tenant-globex"])
    )
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=acme)) != hash_of(with_frames(BASE_FRAMES))
    moved = [{**f, "lineno": f["lineno"] + 3} for f in BASE_FRAMES]
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=acme)) == hash_of(with_frames(moved, fingerprint=acme))


def test_default_alone_is_not_the_same_as_no_fingerprint_marker_text() -> None:
    # ["{{ default }}"] is computed from the default hash; the literal text must not be a fingerprint part.
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=["{{ default }}"])) != hash_of(
        with_frames(BASE_FRAMES, fingerprint=["{{ other }}"])
    )


def test_malformed_fingerprint_is_ignored() -> None:
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=[1, 2])) == hash_of(with_frames(BASE_FRAMES))
    assert hash_of(with_frames(BASE_FRAMES, fingerprint="payments")) == hash_of(with_frames(BASE_FRAMES))
    assert hash_of(with_frames(BASE_FRAMES, fingerprint=[])) == hash_of(with_frames(BASE_FRAMES))


def test_hash_shape() -> None:
    value = hash_of(exception_event())
    assert len(value) == 32
    assert int(value, 16) >= 0
    assert hash_of(exception_event()) == value  # deterministic, independent of the event id


# --- end to end ---------------------------------------------------------------------------------------------


def test_moved_code_and_new_call_path_end_to_end(stack: Stack) -> None:
    first = support.send_ok(stack, with_frames(BASE_FRAMES))
    moved = support.send_ok(stack, with_frames([{**f, "lineno": f["lineno"] + 12} for f in BASE_FRAMES]))
    other_path = support.send_ok(stack, with_frames([frame("retry", "    process(job)"), BASE_FRAMES[1]]))
    stack.digest()
    assert support.issue_of(stack, first) == support.issue_of(stack, moved)
    assert support.issue_of(stack, other_path) != support.issue_of(stack, first)
    assert support.issue_count(stack) == 2
    issue = stack.api(f"/issues/{support.issue_of(stack, first)}").json()
    assert issue["count"] == 2
    assert issue["grouping_version"] == CURRENT


def test_messages_with_ids_are_one_issue_end_to_end(stack: Stack) -> None:
    ids = [
        support.send_ok(stack, message_event(f"run {n} of user{n}@example.com failed at https://x.example/{n}"))
        for n in range(5)
    ]
    ids.append(support.send_ok(stack, message_event("run 9 of u@example.com failed at http://y.example/q?z=1")))
    stack.digest()
    assert len({support.issue_of(stack, event_id) for event_id in ids}) == 1
    assert support.issue_count(stack) == 1


def test_same_hash_in_two_projects_is_two_issues(stack: Stack) -> None:
    python = support.send_ok(stack, exception_event())
    node = support.send_ok(
        stack, exception_event(), project_id=2, auth="Sentry sentry_key=nodepublickey, sentry_version=7"
    )
    stack.digest()
    assert support.issue_of(stack, python) != support.issue_of(stack, node)
    assert support.count(stack, issues) == 2


def test_resolved_issue_reopens_on_a_new_event(stack: Stack) -> None:
    first = support.send_ok(stack, exception_event())
    result = stack.services.digester.run_once()
    assert result is not None
    issue_id = support.issue_of(stack, first)
    assert result.new_issues == [issue_id]
    assert result.regressions == []

    headers = {"Authorization": f"Bearer {stack.token}"}
    patched = stack.client.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved"}, headers=headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "resolved"
    assert patched.json()["resolved_at"] is not None
    assert patched.json()["regressed_at"] is None

    support.send_ok(stack, exception_event())
    result = stack.services.digester.run_once()
    assert result is not None
    assert result.regressions == [issue_id]
    assert result.new_issues == []
    issue = stack.api(f"/issues/{issue_id}").json()
    assert issue["status"] == "unresolved"
    assert issue["regressed_at"] is not None
    assert issue["resolved_at"] is None
    assert issue["count"] == 2

    # A further event on the now unresolved issue is not another regression.
    support.send_ok(stack, exception_event())
    result = stack.services.digester.run_once()
    assert result is not None
    assert result.regressions == []


def test_ignored_issue_stays_ignored(stack: Stack) -> None:
    first = support.send_ok(stack, exception_event())
    stack.digest()
    issue_id = support.issue_of(stack, first)
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert stack.client.patch(f"/api/v1/issues/{issue_id}", json={"status": "ignored"}, headers=headers).is_success
    support.send_ok(stack, exception_event())
    result = stack.services.digester.run_once()
    assert result is not None
    assert result.regressions == []
    assert stack.api(f"/issues/{issue_id}").json()["status"] == "ignored"
