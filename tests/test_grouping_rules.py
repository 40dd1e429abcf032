"""Project grouping rules: the stack trace and fingerprint rule syntax, its errors, and what rules do to hashes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stackwatch.server.digest.grouping import effective_fingerprint, grouping_hash, in_app, is_explicit
from stackwatch.server.digest.grouping.rules import EMPTY, ProjectRules, RuleError
from tests.support import exception_event, frame, message_event, new_id, normalized


def rules(stack: str = "", fingerprint: str = "") -> ProjectRules:
    return ProjectRules.parse(stack, fingerprint)


def v2(raw: dict[str, Any], project: ProjectRules = EMPTY) -> str:
    return grouping_hash(normalized(raw), 2, project)


# --- parsing ----------------------------------------------------------------------------------------------


def test_empty_text_and_comments_are_no_rules() -> None:
    parsed = rules("\n# nothing yet\n   \n", "# none\n")
    assert parsed.stack_rules == () and parsed.fingerprint_rules == ()
    assert EMPTY.stack_rules == () and EMPTY.fingerprint_rules == ()


def test_parse_is_cached_by_text() -> None:
    assert rules("path:**/vendor/** -app") is rules("path:**/vendor/** -app")
    assert rules("path:**/vendor/** -app") is not rules("path:**/lib/** -app")


def test_a_stack_rule_reads_its_matchers_and_actions() -> None:
    (rule,) = rules('!app:yes family:native,rust path:"**/my lib/**" function:std::* -app -group # why').stack_rules
    assert [(m.key, m.value, m.negated) for m in rule.matchers] == [
        ("app", "yes", True),
        ("family", "native,rust", False),
        ("path", "**/my lib/**", False),
        ("function", "std::*", False),
    ]
    assert rule.actions == (("app", False), ("group", False))
    assert rule.families == frozenset({"native", "rust"})


def test_a_fingerprint_rule_reads_its_matchers_and_parts() -> None:
    (rule,) = rules(
        fingerprint='error.type:"Database*" tags.component:api -> database-down, "{{ level }} x" {{default}}'
    ).fingerprint_rules
    assert [(m.key, m.value) for m in rule.event_matchers] == [("error.type", "Database*"), ("tags.component", "api")]
    assert rule.parts == ("database-down", "{{ level }} x", "{{default}}")


@pytest.mark.parametrize(
    ("stack", "fingerprint", "line", "message"),
    [
        ("path:**/vendor/** -app\nfile:x.py -app", "", 2, "unknown matcher file: (known: path:, function:, module:"),
        ("path:**/vendor/** +inapp", "", 1, "unknown action +inapp (known: +app, -app, +group, -group)"),
        ("path:**/vendor/**", "", 1, "a rule needs an action"),
        ("-app", "", 1, "a rule needs at least one matcher"),
        ("-app path:x", "", 1, "matchers come before the actions"),
        ('path:"**/my lib/** -app', "", 1, "unclosed quote"),
        ("path: -app", "", 1, "path: needs a value"),
        ("family:java -app", "", 1, "unknown family 'java'"),
        ("app:maybe -app", "", 1, "app: takes yes or no"),
        ("vendor -app", "", 1, "'vendor' is neither a matcher"),
        ("error.type:X -> x", "", 1, "'->' belongs in fingerprint rules"),
        ("", "error.type:DatabaseUnavailable database-down", 1, "missing '->'"),
        ("", "# c\nerror.type:DatabaseUnavailable ->", 2, "nothing after '->'"),
        ("", "error.type:DatabaseUnavailable -> # just a comment", 1, "nothing after '->'"),
        ("", "-> database-down", 1, "nothing before '->'"),
        ("", "colour:red -> red", 1, "unknown matcher colour: (known: error.type:"),
        ("", "error.type:X -app -> x", 1, "-app is a stack trace rule action"),
        ("", 'message:"timeout -> timeouts', 1, "unclosed quote"),
        ("", 'error.type:X -> "down', 1, "unclosed quote"),
        ("", "error.type:X -> {{ default", 1, "unbalanced '{{'"),
        ("", "error.type:X -> {{ colour }}", 1, "unknown variable {{ colour }}"),
        ("", "tags.:x -> y", 1, "unknown matcher tags.:"),
    ],
)
def test_rule_errors_say_what_and_where(stack: str, fingerprint: str, line: int, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        rules(stack, fingerprint)
    assert raised.value.kind == ("stack trace" if stack else "fingerprint")
    assert raised.value.line == line
    assert message in raised.value.message
    assert str(raised.value).startswith(f"{raised.value.kind} rules, line {line}: ")


# --- stack trace rules --------------------------------------------------------------------------------------


VENDORED = {
    "function": "charge",
    "abs_path": "/srv/shop/third_party/stripe/client.py",
    "module": "third_party.stripe.client",
}
OWN = {"function": "checkout", "abs_path": "/srv/shop/cart.py", "module": "shop.cart"}


def test_app_actions_set_in_app_and_win_over_the_sdk() -> None:
    assert in_app(VENDORED, "python") is None
    assert in_app({**VENDORED, "abs_path": "/srv/shop/vendor/stripe/client.py"}, "python") is False  # built-in
    assert in_app(VENDORED, "python", rules("path:**/third_party/** -app")) is False
    assert in_app({**VENDORED, "in_app": True}, "python", rules("path:**/third_party/** -app")) is False
    assert in_app(OWN, "python", rules("module:shop.* +app")) is True
    site = {"function": "get", "abs_path": "/venv/lib/python3.12/site-packages/shop_sdk/api.py"}
    assert in_app(site, "python") is False  # the built-in guess ...
    assert in_app(site, "python", rules("path:**/site-packages/shop_sdk/** +app")) is True  # ... a project overrides


def test_later_lines_win() -> None:
    assert in_app(VENDORED, "python", rules("path:**/third_party/** -app\npath:**/third_party/stripe/** +app")) is True
    assert in_app(VENDORED, "python", rules("path:**/third_party/stripe/** +app\npath:**/third_party/** -app")) is False


def test_every_matcher_of_a_line_must_match() -> None:
    assert in_app(VENDORED, "python", rules("path:**/third_party/** function:charge -app")) is False
    assert in_app(VENDORED, "python", rules("path:**/third_party/** function:refund -app")) is None
    assert in_app(VENDORED, "python", rules("path:**/third_party/** family:javascript -app")) is None
    assert in_app(VENDORED, "python", rules("family:python module:third_party.* -app")) is False


def test_negation_quotes_and_app_matcher() -> None:
    assert in_app(OWN, "python", rules("!path:**/third_party/** +app")) is True
    assert in_app(VENDORED, "python", rules("!path:**/third_party/** +app")) is None
    spaced = {"function": "f", "abs_path": "/srv/my lib/x.py"}
    assert in_app(spaced, "python", rules('path:"/srv/my lib/**" -app')) is False
    assert in_app(OWN, "python", rules("module:shop.* +app\napp:yes function:checkout -app")) is False
    assert in_app(OWN, "python", rules("app:no function:checkout +app")) is True


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("**/deps/**", "/srv/shop/deps/a/b.py", True),
        ("**/deps/**", "deps/a.py", True),
        ("/srv/*/cart.py", "/srv/shop/cart.py", True),
        ("/srv/*/cart.py", "/srv/shop/sub/cart.py", False),
        ("/srv/**/cart.py", "/srv/shop/sub/cart.py", True),
        ("cart.py", "/srv/shop/cart.py", True),  # a pattern without a directory matches the base name
        ("*.min.js", "https://cdn.example/app.min.js", True),
        ("CART.PY", "/srv/shop/cart.py", True),  # paths match whatever their case
        ("C:\\Program Files\\Shop\\**", "C:\\Program Files\\Shop\\bin\\shop.dll", True),
        ("src/**", "webpack:///./src/cart.js", True),  # against the normalized path too
        ("?art.py", "/srv/cart.py", True),
    ],
)
def test_path_globs(pattern: str, path: str, hit: bool) -> None:
    assert (in_app({"function": "f", "abs_path": path}, "javascript", rules(f'path:"{pattern}" -app')) is False) is hit


def test_function_globs_cross_separators_and_keep_case() -> None:
    cpp = {"function": "std::vector<int>::at(unsigned long)", "package": "/opt/shop/bin/shop"}
    assert in_app(cpp, "native", rules("function:std::* +app")) is True
    assert in_app(cpp, "native", rules("function:STD::* +app")) is False  # the built-in guess for std:: stands
    assert in_app(cpp, "native", rules("function:std::vector::at +app")) is True  # the normalized name matches too


def test_package_matcher() -> None:
    lib = {"function": "sqlite3_step", "package": "/opt/shop/lib/libsqlite3.so.0"}
    assert in_app(lib, "native", rules("package:**/libsqlite3.so* -app")) is False
    assert in_app(lib, "native", rules("package:libsqlite3.so* -app")) is False


def test_group_actions_take_frames_out_of_the_hash_and_back() -> None:
    def event(*functions: str) -> dict[str, Any]:
        return exception_event(frames=[frame(f, f"    {f}()") for f in functions])

    drop_retry = rules("function:retry -group")
    assert v2(event("handle", "retry", "process"), drop_retry) == v2(event("handle", "process"), drop_retry)
    assert v2(event("handle", "retry", "process")) != v2(event("handle", "process"))
    # +group on a later line brings back a frame a built-in rule dropped.
    chrome = {"function": "Array.forEach", "filename": "<anonymous>", "in_app": True}
    own = {"function": "render", "filename": "https://a.example/app.js", "in_app": True}

    def js(*frames: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": new_id(),
            "platform": "javascript",
            "exception": {"values": [{"type": "TypeError", "stacktrace": {"frames": list(frames)}}]},
        }

    assert v2(js(chrome, own)) == v2(js(own))
    keep = rules('path:"<anonymous>" +group')
    assert v2(js(chrome, own), keep) != v2(js(own), keep)


def test_std_functions_can_be_dropped_from_native_grouping() -> None:
    def crash(*functions: str) -> dict[str, Any]:
        frames = [
            {"function": f, "package": "/opt/shop/bin/shop", "instruction_addr": "0x1", "in_app": True}
            for f in functions
        ]
        return {
            "event_id": new_id(),
            "platform": "native",
            "exception": {"values": [{"type": "SIGABRT", "stacktrace": {"frames": frames}}]},
        }

    project = rules("function:std::* -group")
    one, two = crash("main", "std::thread::_M_run()", "shop::work()"), crash("main", "shop::work()")
    assert v2(one, project) == v2(two, project)
    assert v2(one) != v2(two)


# --- fingerprint rules ----------------------------------------------------------------------------------


def failure(kind: str = "DatabaseUnavailable", value: str = "db-1 refused", **fields: Any) -> dict[str, Any]:
    return exception_event(kind, value, **fields)


def test_a_fingerprint_rule_puts_matching_events_in_one_issue() -> None:
    project = rules(fingerprint="error.type:DatabaseUnavailable -> database-down")
    elsewhere = failure(frames=[frame("elsewhere", "    connect()")])
    assert v2(failure(), project) == v2(elsewhere, project)
    assert v2(failure(), project) != v2(failure())
    assert v2(failure("TimeoutError"), project) == v2(failure("TimeoutError"))  # not matching: default grouping
    assert effective_fingerprint(normalized(failure()), project) == ["database-down"]


@pytest.mark.parametrize(
    ("matcher", "hit", "miss"),
    [
        ("error.type:Database*", {}, {"kind": "TimeoutError"}),
        ("error.value:*REFUSED*", {}, {"value": "db-1 timed out"}),
        ("message:*refused*", {}, {"value": "timed out"}),
        ("logger:shop.db", {"logger": "shop.db"}, {"logger": "shop.web"}),
        ("level:fatal", {"level": "fatal"}, {"level": "error"}),
        ("tags.component:api", {"tags": {"component": "api"}}, {"tags": {"component": "worker"}}),
        ("release:shop@2.*", {"release": "shop@2.4.0"}, {"release": "shop@1.9.0"}),
        ("path:**/db/**", {"frames": [{"function": "q", "abs_path": "/srv/shop/db/pool.py"}]}, {}),
        ("function:connect", {"frames": [frame("connect", "x")]}, {}),
        ("module:shop.db.*", {"frames": [frame("q", "x", module="shop.db.pool")]}, {}),
        ("family:javascript", {"platform": "node"}, {}),
        ("!level:fatal", {}, {"level": "fatal"}),
    ],
)
def test_fingerprint_matchers(matcher: str, hit: dict[str, Any], miss: dict[str, Any]) -> None:
    project = rules(fingerprint=f"{matcher} -> grouped")

    def event(fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        raw = failure(fields.pop("kind", "DatabaseUnavailable"), fields.pop("value", "db-1 refused"))
        if "frames" in fields:
            raw["exception"]["values"][0]["stacktrace"]["frames"] = fields.pop("frames")
        raw.update(fields)
        return raw

    assert effective_fingerprint(normalized(event(hit)), project) == ["grouped"]
    assert effective_fingerprint(normalized(event(miss)), project) is None


def test_the_message_matcher_reads_log_messages() -> None:
    project = rules(fingerprint='message:"lease lost*" -> lease')
    assert effective_fingerprint(normalized(message_event("lease lost: run 42")), project) == ["lease"]
    assert effective_fingerprint(normalized(message_event("run 42 done")), project) is None


def test_frame_matchers_of_one_rule_hold_on_one_frame() -> None:
    project = rules(fingerprint="module:shop.db function:connect -> db-connect {{ function }} {{ module }}")
    same_frame = failure(frames=[frame("connect", "x", module="shop.db")])
    split = failure(frames=[frame("connect", "x", module="shop.web"), frame("query", "x", module="shop.db")])
    assert effective_fingerprint(normalized(same_frame), project) == ["db-connect", "connect", "shop.db"]
    assert effective_fingerprint(normalized(split), project) is None


def test_first_matching_rule_wins() -> None:
    project = rules(fingerprint="error.type:DatabaseUnavailable -> first\nerror.type:Database* -> second")
    assert effective_fingerprint(normalized(failure()), project) == ["first"]
    assert effective_fingerprint(normalized(failure("DatabaseLocked")), project) == ["second"]


def test_variables_are_filled_from_the_event() -> None:
    project = rules(
        fingerprint="error.type:* -> {{ error.type }} {{ error.value }} {{ transaction }} {{ level }} "
        "{{ logger }} {{ function }} {{ module }} {{ default }}"
    )
    raw = failure(transaction="POST /checkout", logger="shop.db", level="warning")
    assert effective_fingerprint(normalized(raw), project) == [
        "DatabaseUnavailable",
        "db-1 refused",
        "POST /checkout",
        "warning",
        "shop.db",
        "process",
        "app.worker",
        "{{ default }}",
    ]
    bare = rules(fingerprint="error.type:* -> {{ transaction }} {{ logger }}")
    assert effective_fingerprint(normalized(failure()), bare) == ["<no-transaction>", "<no-logger>"]


def test_variables_inside_text_and_quoted_parts() -> None:
    project = rules(fingerprint='error.type:* -> "db {{ level }}",db-{{ error.type }}')
    assert effective_fingerprint(normalized(failure()), project) == ["db error", "db-DatabaseUnavailable"]


def test_default_in_a_rule_splits_the_default_issue() -> None:
    project = rules(fingerprint="tags.tenant:* -> {{ default }} {{ error.type }}")
    acme = failure(tags={"tenant": "acme"})
    moved = copy.deepcopy(acme)
    moved["exception"]["values"][0]["stacktrace"]["frames"][0]["lineno"] = 99
    other_code = failure(tags={"tenant": "acme"}, frames=[frame("elsewhere", "    connect()")])
    assert v2(acme, project) == v2(moved, project)
    assert v2(acme, project) != v2(other_code, project)
    assert v2(acme, project) != v2(acme)


def test_an_sdk_fingerprint_wins_over_rules_unless_it_is_only_default() -> None:
    project = rules(fingerprint="error.type:DatabaseUnavailable -> database-down")
    assert effective_fingerprint(normalized(failure(fingerprint=["payments"])), project) == ["payments"]
    assert effective_fingerprint(normalized(failure(fingerprint=["{{ default }}"])), project) == ["database-down"]
    assert effective_fingerprint(normalized(failure(fingerprint=["{{default}}"])), project) == ["database-down"]
    assert effective_fingerprint(normalized(failure(fingerprint=["{{ default }}"])), EMPTY) == ["{{ default }}"]


def test_is_explicit_counts_every_matching_fingerprint_rule() -> None:
    project = rules(
        fingerprint="error.type:DatabaseUnavailable -> database-down\nerror.type:Timeout* -> {{ default }} t"
    )
    assert is_explicit(normalized(failure()), project)
    assert not is_explicit(normalized(failure()))
    assert is_explicit(normalized(failure("TimeoutError")), project)  # a rule with {{ default }} decides too
    assert not is_explicit(normalized(failure("KeyError")), project)  # no rule matches
    assert is_explicit(normalized(failure(fingerprint=["payments"])), EMPTY)
    assert not is_explicit(normalized(failure(fingerprint=["{{ default }}", "acme"])), project)


def test_quoted_values_may_hold_a_hash_sign_and_an_arrow() -> None:
    stack = rules(stack='function:"Parser::operator->" -group  # C++\npath:"**/c#/**" -app')
    assert [m.value for rule in stack.stack_rules for m in rule.matchers] == ["Parser::operator->", "**/c#/**"]
    prints = rules(fingerprint='error.value:"a -> b" -> arrow\nmessage:"#1 fails" -> "issue #1" again # note')
    first, second = prints.fingerprint_rules
    assert [m.value for m in first.event_matchers] == ["a -> b"] and first.parts == ("arrow",)
    assert [m.value for m in second.event_matchers] == ["#1 fails"] and second.parts == ("issue #1", "again")
    with pytest.raises(RuleError, match="belongs in fingerprint rules"):
        rules(stack="function:x -> y")
