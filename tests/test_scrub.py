"""Tests for the redaction engine (stackwatch.scrub): shared vectors, properties and a real SDK event."""

from __future__ import annotations

import copy
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stackwatch.scrub as scrub
from stackwatch.scrub import FILTERED, ScrubOptions, scrub_event, scrub_text
from stackwatch.scrub.rules import OPTIONAL_RULES
from tests.captures import PYTHON_DIR

VECTORS = json.loads((Path(__file__).parent / "vectors" / "scrub.json").read_text(encoding="utf-8"))
FIXTURE = PYTHON_DIR / "0000.body"


def _options(case: dict[str, Any]) -> ScrubOptions:
    return ScrubOptions(**case.get("options", {}))


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vector(case: dict[str, Any]) -> None:
    options = _options(case)
    if isinstance(case["input"], str):
        result, remarks = scrub_text(case["input"], options)
        assert result == case["expected"]
        assert bool(remarks) == (result != case["input"])
        for remark in remarks:
            assert result[remark.start : remark.end].startswith("[Filtered")
        assert scrub_text(result, options) == (result, [])
    elif "event" in case["input"]:
        result = scrub_event(case["input"]["event"], options)
        assert result == case["expected"]
        assert scrub_event(result, options) == result
        assert [s for s in case["secrets"] if s in json.dumps(result, ensure_ascii=False)] == []
    else:
        event = {"extra": {case["input"]["key"]: case["input"]["value"]}}
        assert scrub_event(event, options)["extra"][case["input"]["key"]] == case["expected"]


def test_vectors_are_enough() -> None:
    negatives = [c for c in VECTORS if isinstance(c["input"], str) and c["input"] == c["expected"]]
    assert len(VECTORS) >= 200
    assert len(negatives) >= 60


def test_public_surface() -> None:
    assert sorted(scrub.__all__) == sorted(
        ["ALLOWED_KEYS", "FILTERED", "RULES", "Remark", "Rule", "ScrubOptions", "key_rule", "scrub_event", "scrub_text"]
    )


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ScrubOptions(True)  # type: ignore[misc]


def test_rule_names_unique() -> None:
    names = [r.name for r in scrub.RULES]
    assert len(names) == len(set(names))


def _fixture_event() -> dict[str, Any]:
    lines = gzip.decompress(FIXTURE.read_bytes()).split(b"\n")
    event: dict[str, Any] = json.loads(lines[2])
    return event


def test_real_sdk_event_loses_planted_secrets() -> None:
    event = _fixture_event()
    before = copy.deepcopy(event)
    result = scrub_event(event)
    text = json.dumps(result)
    for secret in ["sk_live_51HxYzSECRETTOKEN", "abcdef123456", "key_ABCDEF", "hunter2"]:
        assert secret not in text
    assert event == before
    assert result["tags"] == {"component": "http-executor", "workflow_id": "wf_orders", "run_id": "run_0"}
    assert result["contexts"]["workflow"]["workflow_id"] == "wf_orders"
    assert result["contexts"]["trace"]["trace_id"] == "389e7eddb50c45e0baa2bfaf528f60ca"
    assert result["event_id"] == event["event_id"]
    frame_meta = result["_meta"]["exception"]["values"]["0"]["stacktrace"]["frames"]["1"]["vars"]
    assert frame_meta["password"] == {"": {"rem": [["!config", "s"]]}}  # the SDK's own remark is kept
    assert frame_meta["headers"]["X-Api-Key"] == {"": {"rem": [["api_key", "x"]], "len": 12}}
    assert scrub_event(result) == result


def test_input_is_not_mutated() -> None:
    event = {"extra": {"password": "x1", "list": [{"token": "t"}]}, "_meta": {"extra": {"": {"rem": [["a", "x"]]}}}}
    before = copy.deepcopy(event)
    result = scrub_event(event)
    assert event == before
    result["_meta"]["extra"][""]["rem"].append("changed")
    result["extra"]["list"][0]["token"] = "changed"
    assert event == before


def test_meta_paths_for_value_and_key_rules() -> None:
    event = {
        "message": "ok",
        "exception": {"values": [{"value": "GET https://h/?token=abc123 failed"}]},
        "request": {"headers": [["Cookie", "sid=1"], ["Accept", "*/*"]]},
        "tags": [["password", "x1"], ["run_id", "token=abc123"]],
    }
    result = scrub_event(event)
    label = "[Filtered:secret_param]"
    assert result["exception"]["values"][0]["value"] == f"GET https://h/?token={label} failed"
    start = len("GET https://h/?token=")
    assert result["_meta"]["exception"]["values"]["0"]["value"] == {
        "": {
            "rem": [["secret_param", "s", start, start + len(label)]],
            "len": len(event["exception"]["values"][0]["value"]),
        }  # type: ignore[index]
    }
    assert result["request"]["headers"] == [["Cookie", FILTERED], ["Accept", "*/*"]]
    assert result["_meta"]["request"]["headers"]["0"]["1"] == {"": {"rem": [["cookie", "x"]], "len": 5}}
    # An allow-listed key is exempt from key rules, not from value rules.
    assert result["tags"] == [["password", FILTERED], ["run_id", f"token={label}"]]
    assert result["_meta"]["tags"] == {
        "0": {"1": {"": {"rem": [["password", "x"]], "len": 2}}},
        "1": {"1": {"": {"rem": [["secret_param", "s", 6, 6 + len(label)]], "len": 12}}},
    }
    assert "message" not in result["_meta"]


ALLOW_LISTED = ["workflow_id", "run_id", "step_id", "tenant", "component", "event_id", "trace_id", "span_id"]


@pytest.mark.parametrize("key", ALLOW_LISTED)
def test_allow_listed_keys_are_exempt_from_key_rules_only(key: str) -> None:
    event = {
        "tags": {key: "token=abc123secret"},
        "contexts": {"auth": {key: "v-1"}, "trace": {key: "Bearer abcdef123456"}},
        "extra": {key: "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
    }
    result = scrub_event(event)
    assert result["contexts"]["auth"] == {key: "v-1"}  # under "auth", yet not filtered: the key is allow-listed
    assert result["tags"] == {key: "token=[Filtered:secret_param]"}
    assert result["contexts"]["trace"] == {key: "Bearer [Filtered:bearer]"}
    assert "AKIA" not in result["extra"][key] and "wJalr" not in result["extra"][key]
    assert set(result["_meta"]) == {"tags", "contexts", "extra"}


def test_no_meta_when_nothing_changed() -> None:
    event = {"message": "all fine", "extra": {"n": 1}}
    assert scrub_event(event) == event


def test_deep_nesting_does_not_recurse() -> None:
    deep: Any = "Bearer abc123def456"
    for i in range(5000):
        deep = {"k": deep} if i % 2 else [deep]
    result = scrub_event({"extra": deep})
    node = result["extra"]
    for i in reversed(range(5000)):
        node = node["k"] if i % 2 else node[0]
    assert node == "Bearer [Filtered:bearer]"


def test_huge_string() -> None:
    text = ("lorem ipsum 4111111111111112 " * 40_000) + "token=zzz"
    result, remarks = scrub_text(text)
    assert result.endswith("token=[Filtered:secret_param]")
    assert len(remarks) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=4)
    ),
    max_leaves=30,
)
secretish = st.sampled_from(
    ["password", "token", "run_id", "tags", "headers", "x", "Bearer abc123def", "?sig=1a", "4111111111111111", ""]
)
events = st.dictionaries(secretish | st.text(max_size=8), json_values | secretish, max_size=6)


@settings(max_examples=300, deadline=None)
@given(events, st.booleans(), st.booleans())
def test_never_raises_and_is_idempotent(event: dict[str, Any], emails: bool, ips: bool) -> None:
    options = ScrubOptions(scrub_emails=emails, scrub_ips=ips)
    before = copy.deepcopy(event)
    once = scrub_event(event, options)
    assert event == before
    assert scrub_event(once, options) == once


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_scrub_text_idempotent(text: str) -> None:
    once, _ = scrub_text(text, ScrubOptions(scrub_emails=True, scrub_ips=True))
    assert scrub_text(once, ScrubOptions(scrub_emails=True, scrub_ips=True)) == (once, [])


def test_an_empty_key_beside_existing_meta_is_merged() -> None:
    """A key ``""`` is the slot ``_meta`` uses for its own remarks; the merge must tell the two apart."""
    event = {"extra": {"foo": {"": "Bearer abc12345678"}}, "_meta": {"extra": {"foo": {"": {"len": 50}}}}}
    out = scrub_event(event)
    assert out["extra"]["foo"][""] == "Bearer [Filtered:bearer]"
    assert out["_meta"]["extra"]["foo"][""]["len"] == 50


def _javascript_form(pattern: str) -> tuple[str, str]:
    """A pattern of the table as the JavaScript layer is to load it: the mechanical rewrites docs/redaction.md
    names (named groups, the one backreference, ``\\Z``, leading flags)."""
    flags = "u"
    if match := re.match(r"\(\?([is]+)\)", pattern):
        flags += match.group(1)
        pattern = pattern[match.end() :]
    return pattern.replace("(?P<", "(?<").replace("(?P=q)", r"\k<q>").replace(r"\Z", "$"), flags


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_value_patterns_compile_in_javascript() -> None:
    """The JavaScript SDK is to load the same table: every value pattern (and trigger) must be a valid RegExp with
    the ``u`` flag, which rejects unneeded escapes such as ``\\"`` or ``\\-`` outside a class."""
    rules = [r for r in scrub.RULES if r.kind == "value"]
    rules += [r for group in OPTIONAL_RULES.values() for r in group]
    forms = [[r.name, *_javascript_form(r.pattern)] for r in rules]
    forms += [[f"{r.name} trigger", r.trigger, "u"] for r in rules if r.trigger is not None]
    script = (
        "const bad = []; for (const [name, p, f] of JSON.parse(process.argv[1])) {"
        " try { new RegExp(p, f); } catch (e) { bad.push(name + ': ' + e.message); } }"
        " console.log(JSON.stringify(bad));"
    )
    result = subprocess.run(["node", "-e", script, json.dumps(forms)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
