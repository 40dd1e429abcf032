"""The grouping corpus: real-shaped events of every SDK family, and which of them are one issue.

``tests/fixtures/grouping/<family>.json`` holds a list of cases ``{"name", "expect", "why", "events"}``. A
``"same"`` case is events Sentry's default grouping puts in one issue (the same error from four browsers, a crash
with and without system frames); an ``"apart"`` case is events it keeps in as many issues as there are events.
A case whose ``why`` says "Beyond Sentry:" is the same code that Sentry's server would still split.
The events are written after what each official SDK sends: its frame fields, mechanisms, and off-spec shapes.

Version 1 of the grouping gets some cases wrong. They are listed in ``V1_WRONG`` and expected to fail, strictly,
while ``CURRENT`` is 1: a case that starts passing must leave the list. From version 2 on nothing is excused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackwatch.server.digest.grouping import CURRENT, grouping_hash
from tests.conftest import PYTHON_KEY, ServerProcess
from tests.support import event_envelope, normalized

CORPUS = Path(__file__).parent / "fixtures" / "grouping"
FAMILIES = (
    "javascript-browser",
    "node",
    "python",
    "java-android",
    "cocoa-ios",
    "dotnet",
    "php",
    "ruby",
    "go",
    "rust",
    "native",
)
EXPECTATIONS = ("same", "apart")

# Cases grouping version 1 gets wrong, as "family/case": what version 2 must fix.
V1_WRONG = frozenset(
    {
        "cocoa-ios/crash-unsymbolicated-different-places",
        "cocoa-ios/nserror-different-codes",
        "dotnet/async-state-machine-not-demangled",
        "dotnet/displayclass-and-async-lambda-renumbered",
        "go/dependency-frames-the-sdk-calls-in-app",
        "java-android/android-framework-frames-without-in-app",
        "java-android/jvm-lambda-and-proxy-numbers",
        "java-android/jvm-synthetic-lambda-method-renumbered",
        "javascript-browser/eval-frames-and-global-code",
        "javascript-browser/offspec-huge-context-lines",
        "javascript-browser/same-error-across-vite-deploys",
        "javascript-browser/same-error-in-chrome-firefox-safari-edge",
        "native/linux-segv-with-and-without-system-frames",
        "native/macos-abort-signatures-and-libsystem",
        "native/synthetic-signals-same-place",
        "native/unsymbolicated-only-different-places",
        "native/windows-access-violation-ntdll",
        "php/php84-closure-names",
        "python/message-legacy-raven-interface",
        "ruby/erb-template-method-names",
        "ruby/ruby-34-backtrace-labels",
    }
)


def load_family(family: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / f"{family}.json").read_text(encoding="utf-8"))
    return cases


def all_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for family in FAMILIES:
        for case in load_family(family):
            yield f"{family}/{case['name']}", case


def case_params() -> list[Any]:
    """One parameter per case; those version 1 gets wrong are strict xfails while it is the current version."""
    params = []
    for case_id, case in all_cases():
        marks = []
        if CURRENT == 1 and case_id in V1_WRONG:
            marks.append(pytest.mark.xfail(strict=True, reason="grouping v1 gets this case wrong"))
        params.append(pytest.param(case, id=case_id, marks=marks))
    return params


def expected_issue_count() -> int:
    """The issues the corpus makes when every case is grouped right: one per "same" case, one per "apart" event."""
    return sum(1 if case["expect"] == "same" else len(case["events"]) for _, case in all_cases())


# --- the fixtures ---------------------------------------------------------------------------------------------


def test_every_family_has_a_file_and_nothing_else_is_there() -> None:
    assert sorted(path.stem for path in CORPUS.glob("*.json")) == sorted(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_fixture_file_has_the_case_shape(family: str) -> None:
    cases = load_family(family)
    assert isinstance(cases, list) and cases
    names = [case.get("name") for case in cases]
    assert len(set(names)) == len(names), f"duplicate case names in {family}"
    for case in cases:
        assert set(case) == {"name", "expect", "why", "events"}, case.get("name")
        assert isinstance(case["name"], str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", case["name"])
        assert case["expect"] in EXPECTATIONS, case["name"]
        assert isinstance(case["why"], str) and len(case["why"]) > 20, case["name"]
        assert isinstance(case["events"], list) and len(case["events"]) >= 2, case["name"]
        for event in case["events"]:
            assert isinstance(event, dict), case["name"]
            assert re.fullmatch(r"[0-9a-f]{32}", event.get("event_id", "")), case["name"]
            assert isinstance(event.get("platform"), str), case["name"]
            assert isinstance(event.get("sdk"), dict) and event["sdk"].get("name") and event["sdk"].get("version")


def test_every_family_has_cases_to_merge_and_cases_to_keep_apart() -> None:
    for family in FAMILIES:
        assert {case["expect"] for case in load_family(family)} == set(EXPECTATIONS), family


def test_event_ids_are_unique_across_the_corpus() -> None:
    ids = [event["event_id"] for _, case in all_cases() for event in case["events"]]
    assert len(set(ids)) == len(ids)


def test_known_v1_failures_name_real_cases() -> None:
    # A renamed or removed case must not leave a stale excuse behind.
    assert not V1_WRONG - {case_id for case_id, _ in all_cases()}


# --- grouping, unit ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", case_params())
def test_case_groups_as_sentry_does(case: dict[str, Any]) -> None:
    hashes = [grouping_hash(normalized(event)) for event in case["events"]]
    if case["expect"] == "same":
        assert len(set(hashes)) == 1, f"{case['name']} split into {len(set(hashes))} issues: {case['why']}"
    else:
        assert len(set(hashes)) == len(hashes), f"{case['name']} merged different errors: {case['why']}"


# --- end to end: HTTP ingest, the digest process, the REST API, on SQLite and PostgreSQL ------------------------


def send_corpus(server: ServerProcess) -> list[str]:
    """Every event of the corpus, as its SDK would post it; returns the event ids in order."""
    sent = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for _, case in all_cases():
            for event in case["events"]:
                response = client.post(
                    "/api/1/envelope/",
                    content=event_envelope(event),
                    headers={"X-Sentry-Auth": f"Sentry sentry_key={PYTHON_KEY}, sentry_version=7"},
                )
                assert response.status_code == 200, f"{case['name']}: {response.status_code} {response.text}"
                sent.append(event["event_id"])
    server.wait_digested(timeout=180)
    return sent


def issue_of_each_event(server: ServerProcess, event_ids: list[str]) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {server.token}"}
    found = {}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers, timeout=30) as client:
        for event_id in event_ids:
            response = client.get(f"/projects/python/events/{event_id}")
            assert response.status_code == 200, f"event {event_id} was not stored: {response.text}"
            assert response.json()["title"].strip(), f"event {event_id} has an empty title"
            found[event_id] = int(response.json()["issue_id"])
    return found


def all_issues(server: ServerProcess) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token}"}
    issues: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers, timeout=30) as client:
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get("/projects/python/issues", params=params).json()
            issues.extend(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return issues


def test_corpus_is_accepted_and_stored_end_to_end(server: ServerProcess) -> None:
    event_ids = send_corpus(server)
    issue_ids = issue_of_each_event(server, event_ids)
    assert len(issue_ids) == len(event_ids)
    issues = all_issues(server)
    assert {issue["id"] for issue in issues} == set(issue_ids.values())
    assert all(issue["title"].strip() for issue in issues), [issue for issue in issues if not issue["title"].strip()]


@pytest.mark.xfail(CURRENT == 1, strict=True, reason="grouping v1 splits what Sentry merges (V1_WRONG)")
def test_corpus_makes_the_issues_sentry_makes_end_to_end(server: ServerProcess) -> None:
    issue_ids = issue_of_each_event(server, send_corpus(server))
    for _, case in all_cases():
        issues = {issue_ids[event["event_id"]] for event in case["events"]}
        wanted = 1 if case["expect"] == "same" else len(case["events"])
        assert len(issues) == wanted, f"{case['name']} ({case['expect']}) made {len(issues)} issues: {case['why']}"
    assert len(all_issues(server)) == expected_issue_count()
