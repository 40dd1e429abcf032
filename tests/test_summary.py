"""Titles, messages and culprits as Sentry shows them (digest/messages.py, digest/normalize.py, digest/summary.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stackwatch.server.digest.grouping import grouping_hash
from stackwatch.server.digest.messages import format_message
from stackwatch.server.digest.summary import Summary, summarize
from tests.conftest import Stack
from tests.support import AUTH, exception_event, frame, issue_of, message_event, new_id, normalized

GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"


def summary_of(raw: dict[str, Any]) -> Summary:
    return summarize(normalized(raw))


def logged(template: str, params: Any, **fields: Any) -> dict[str, Any]:
    """A message event as logging integrations send it: the template and its params, nothing formatted."""
    return {
        "event_id": new_id(),
        "platform": "python",
        "level": "warning",
        "logentry": {"message": template, "params": params},
        **fields,
    }


# --- messages ---------------------------------------------------------------------------------------------------


def test_printf_params_are_filled_in_for_the_title_and_the_template_kept_for_grouping() -> None:
    event = normalized(logged("This is a warning: %s", ["warning"]))
    assert summarize(event).title == "This is a warning: warning"
    assert summarize(event).value == "This is a warning: warning"
    assert event.data["logentry"] == {
        "message": "This is a warning: %s",
        "params": ["warning"],
        "formatted": "This is a warning: warning",
    }
    # Grouping reads the template: other params, same issue.
    assert grouping_hash(event) == grouping_hash(normalized(logged("This is a warning: %s", ["disk full"])))


@pytest.mark.parametrize(
    ("template", "params", "title"),
    [
        ("charge %s failed after %d tries", ["ord_17", 3], "charge ord_17 failed after 3 tries"),
        ("%i of %i jobs, %.1f%% done", [3, 4, 75.0], "3 of 4 jobs, 75.0% done"),
        ("ratio %f, id %x, name %r", [0.5, 255, "ada"], "ratio 0.500000, id ff, name 'ada'"),
        ("[%-6s] [%5d]", ["ab", 42], "[ab    ] [   42]"),
        ("%d items", ["12"], "12 items"),  # another language's logger stringified the number
        ("%s and %s", ["one", "two", "ignored"], "one and two"),  # a trailing extra param (an exception) is fine
    ],
)
def test_printf_style(template: str, params: list[Any], title: str) -> None:
    assert summary_of(logged(template, params)).title == title


def test_printf_with_names_takes_a_dict() -> None:
    event = logged("user %(user)s bought %(count)d %(item)s", {"user": "ada", "count": 2, "item": "pears"})
    assert summary_of(event).title == "user ada bought 2 pears"


def test_curly_names_take_a_dict() -> None:
    event = logged("Order {order_id} for {customer} was declined", {"order_id": "o-9", "customer": "acme"})
    assert summary_of(event).title == "Order o-9 for acme was declined"


@pytest.mark.parametrize(
    ("template", "title"),
    [
        ("Retry {0} of {1} for {0}", "Retry 2 of 5 for 2"),  # .NET, Java MessageFormat
        ("Retry {} of {}", "Retry 2 of 5"),  # SLF4J, Rust
        ("Retry {0:D} of {1,3}", "Retry 2 of 5"),  # format specs and alignments are accepted, not applied
        ('Retry {} of {} with {"backoff": true}', 'Retry 2 of 5 with {"backoff": true}'),  # braced text stays
        ("{{literal}} retry {}", "{literal} retry 2"),
    ],
)
def test_curly_positions_take_a_list(template: str, title: str) -> None:
    assert summary_of(logged(template, [2, 5])).title == title


@pytest.mark.parametrize(
    ("template", "params"),
    [
        ("%s went wrong with %s", ["one"]),  # too few
        ("%(user)s logged in", {"name": "ada"}),  # no such name
        ("%(user)s logged in", ["ada"]),  # names want a dict
        ("%s logged in", {"user": "ada"}),  # positions want a list
        ("%d retries", ["many"]),  # not a number
        ("{user} logged in", ["ada"]),
        ("{3} logged in", ["ada"]),
        ("%999999999s logged in", ["ada"]),  # a width that would take gigabytes
        ("%c logged in", [65]),  # a conversion that is not supported
        ("nothing to fill in", ["ada"]),
        ("%s logged in", []),
        ("%s logged in", "ada"),  # params must be a list or an object
    ],
)
def test_params_that_do_not_fit_leave_the_template_as_it_is(template: str, params: Any) -> None:
    event = normalized(logged(template, params))
    assert summarize(event).title == template
    assert "formatted" not in event.data["logentry"]
    assert event.data["logentry"]["message"] == template


def test_odd_params_never_fail() -> None:
    for params in ([None, True, {"a": [1, 2]}], [10**30], [1e308], ["1e999"], [[]], {"": None}):
        for template in ("%s %d %x %f", "{} {}", "%(a)s {a}", "100% {}", "%", "{", "}"):
            format_message(template, params)  # returns a text or None, never raises
    assert format_message("%s|%s|%s", [None, True, {"a": [1]}]) == "None|True|{'a': [1]}"


def test_the_sdks_formatted_wins() -> None:
    event = normalized(
        logged(
            "disk %s is %d%% full",
            ["/var", 93],
            logentry={"message": "disk %s is %d%% full", "params": ["/var", 93], "formatted": "Disk /var: 93 % used"},
        )
    )
    assert summarize(event).title == "Disk /var: 93 % used"
    assert event.data["logentry"]["message"] == "disk %s is %d%% full"


def test_ravens_legacy_interface_is_read() -> None:
    raw = {
        "event_id": new_id(),
        "platform": "python",
        "sentry.interfaces.Message": {"message": "payment %s declined", "params": ["p-42"]},
    }
    event = normalized(raw)
    assert summarize(event).title == "payment p-42 declined"
    assert event.data["logentry"]["message"] == "payment %s declined"
    assert "sentry.interfaces.Message" not in event.data  # folded into the one shape
    assert grouping_hash(event) == grouping_hash(normalized(logged("payment %s declined", ["p-43"])))


def test_message_as_an_object_is_read() -> None:
    raw = message_event("")
    raw["message"] = {"message": "queue {} is {}% full", "params": ["mail", 97]}
    event = normalized(raw)
    assert summarize(event).title == "queue mail is 97% full"
    assert "message" not in event.data


def test_message_as_an_object_with_only_formatted() -> None:
    raw = message_event("")
    raw["message"] = {"formatted": "Battery low (4%)"}  # Cocoa's shape
    assert summary_of(raw).title == "Battery low (4%)"


def test_message_as_a_string_stays_supported() -> None:
    event = normalized(message_event("Orchestrator lost lease on run_77"))
    assert summarize(event).title == "Orchestrator lost lease on run_77"
    assert event.data["logentry"] == {"message": "Orchestrator lost lease on run_77"}


def test_logentry_wins_over_the_older_places() -> None:
    raw = logged("new %s", ["place"], message="old text")
    raw["sentry.interfaces.Message"] = {"message": "older %s", "params": ["place"]}
    assert summary_of(raw).title == "new place"


def test_secrets_in_params_never_reach_the_title() -> None:
    by_position = normalized(logged("pushing with %s to %s", [GITHUB_TOKEN, "origin"]))
    assert summarize(by_position).title == "pushing with [Filtered:github_token] to origin"
    by_name = normalized(logged("login as %(user)s with %(password)s", {"user": "ada", "password": "hunter2"}))
    assert summarize(by_name).title == "login as ada with [Filtered]"
    assert by_name.data["logentry"]["params"] == {"user": "ada", "password": "[Filtered]"}


@pytest.mark.parametrize(
    ("template", "params", "title"),
    [
        # The secret shows only once the params are in place: the filled-in text is redacted again.
        ("auth with %s%s", [GITHUB_TOKEN[:4], GITHUB_TOKEN[4:]], "auth with [Filtered:github_token]"),
        ("%s=%s", ["password", "hunter2"], "password=[Filtered:secret_param]"),
        # The template names the secret: it is redacted, and never filled in (its placeholders no longer line up).
        ("retry with password=%s", ["hunter2"], "retry with password=[Filtered:secret_param]"),
        ("password=%s user=%s", ["hunter2", "ada"], "password=[Filtered:secret_param] user=%s"),
    ],
)
def test_a_secret_spread_over_template_and_params_is_redacted_with_every_param(
    template: str, params: list[str], title: str
) -> None:
    event = normalized(logged(template, params))
    assert summarize(event).title == title
    assert event.data["logentry"]["params"] == ["[Filtered]"] * len(params)
    assert "hunter2" not in str(event.data) and GITHUB_TOKEN[4:] not in str(event.data)
    remarks = event.data["_meta"]["logentry"]["params"]
    assert sorted(remarks) == [str(i) for i in range(len(params))]
    assert all(node[""]["rem"][0][1] == "x" for node in remarks.values())


def test_secrets_in_the_legacy_interface_are_redacted_and_marked_where_the_page_looks() -> None:
    raw = {"event_id": new_id(), "sentry.interfaces.Message": {"message": "token %s", "params": [GITHUB_TOKEN]}}
    event = normalized(raw)
    assert GITHUB_TOKEN not in str(event.data)
    assert summarize(event).title == "token [Filtered:github_token]"
    assert "params" in event.data["_meta"]["logentry"]  # moved with the message, so the page shows the marker


def test_an_exception_title_is_type_and_value() -> None:
    summary = summary_of(exception_event("ConnectionError", "refused by host\nsecond line"))
    assert (summary.title, summary.type, summary.value) == (
        "ConnectionError: refused by host",
        "ConnectionError",
        "refused by host\nsecond line",
    )


# --- culprits -----------------------------------------------------------------------------------------------------

PYTHON_FRAMES = [
    frame("run", "    worker.run()", module="threading", in_app=False),
    frame("handle", "    process(job)", module="app.jobs"),
    frame("charge", "    gateway.post(order)", module="app.billing"),
    frame("post", "    raise ConnectionError()", module="requests.api", in_app=False),
]


def test_the_sdks_culprit_wins() -> None:
    raw = exception_event(frames=PYTHON_FRAMES, culprit="billing.charge", transaction="POST /orders")
    assert summary_of(raw).culprit == "billing.charge"


def test_the_transaction_comes_before_the_frames() -> None:
    assert summary_of(exception_event(frames=PYTHON_FRAMES, transaction="POST /orders")).culprit == "POST /orders"


def test_a_culprit_that_is_not_text_is_ignored() -> None:
    raw = exception_event(frames=PYTHON_FRAMES, culprit={"oops": 1}, transaction="  ")
    assert summary_of(raw).culprit == "app.billing in charge"


def test_python_style_is_module_in_function_of_the_innermost_in_app_frame() -> None:
    assert summary_of(exception_event(frames=PYTHON_FRAMES)).culprit == "app.billing in charge"


def test_without_in_app_frames_the_innermost_frame_is_the_culprit() -> None:
    frames = [{**f, "in_app": False} for f in PYTHON_FRAMES]
    assert summary_of(exception_event(frames=frames)).culprit == "requests.api in post"


def test_the_main_exception_of_a_chain_decides() -> None:
    raw = exception_event(frames=PYTHON_FRAMES)
    cause = {
        "type": "OSError",
        "value": "reset",
        "stacktrace": {"frames": [frame("read", "    sock.recv()", module="app.net")]},
    }
    raw["exception"]["values"].insert(0, cause)
    assert summary_of(raw).culprit == "app.billing in charge"


def browser_event(platform: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "event_id": new_id(),
        "platform": platform,
        "exception": {"values": [{"type": "TypeError", "value": "x is undefined", "stacktrace": {"frames": frames}}]},
    }


def test_javascript_style_is_function_and_file() -> None:
    frames = [
        {"filename": "https://shop.example.com/static/js/vendor.3e1f.js", "function": "dispatch", "in_app": False},
        {"filename": "https://shop.example.com/static/js/main.4f3a2b.js", "function": "handleCheckout", "in_app": True},
        {"filename": "[native code]", "function": "Array.forEach", "in_app": False},
    ]
    culprit = summary_of(browser_event("javascript", frames)).culprit
    assert culprit == "handleCheckout(https://shop.example.com/static/js/main.4f3a2b.js)"


def test_node_style_prefers_the_module() -> None:
    frames = [
        {
            "filename": "/srv/app/node_modules/express/lib/router.js",
            "module": "express.lib:router",
            "function": "handle",
            "in_app": False,
        },
        {"filename": "/srv/app/src/webhooks.js", "module": "webhooks", "function": "deliverWebhook", "in_app": True},
    ]
    assert summary_of(browser_event("node", frames)).culprit == "deliverWebhook(webhooks)"


@pytest.mark.parametrize("platform", ["native", "cocoa", "objc"])
def test_native_style_is_the_function_alone(platform: str) -> None:
    frames = [
        {"function": "main", "package": "/usr/lib/libSystem.B.dylib", "instruction_addr": "0x1a2b", "in_app": False},
        {"function": "-[CheckoutController payTapped:]", "package": "/var/containers/Shop.app/Shop", "in_app": True},
        {"function": "objc_exception_throw", "package": "/usr/lib/libobjc.A.dylib", "in_app": False},
    ]
    assert summary_of(browser_event(platform, frames)).culprit == "-[CheckoutController payTapped:]"


def test_a_frames_own_platform_decides_its_style() -> None:
    """React Native: a JavaScript frame in a Cocoa event."""
    frames = [{"function": "onPress", "filename": "app:///Checkout.js", "platform": "javascript", "in_app": True}]
    assert summary_of(browser_event("cocoa", frames)).culprit == "onPress(app:///Checkout.js)"


def test_an_in_app_frame_that_names_no_place_is_passed_over() -> None:
    frames = [frame("handle", "    process(job)", module="app.jobs"), {"function": "<lambda>", "in_app": True}]
    assert summary_of(exception_event(frames=frames)).culprit == "app.jobs in handle"


def test_a_message_with_an_attached_stack_trace_uses_it() -> None:
    raw = message_event("slow checkout", stacktrace={"frames": PYTHON_FRAMES}, logger="shop")
    assert summary_of(raw).culprit == "app.billing in charge"


def test_the_logger_is_the_last_resort() -> None:
    assert summary_of(logged("queue %s stalled", ["mail"], logger="meshhook.orchestrator")).culprit == (
        "meshhook.orchestrator"
    )
    assert summary_of(exception_event(frames=[], logger="app.cli")).culprit == "app.cli"
    assert summary_of(message_event("nothing else")).culprit == ""


# --- through ingest and the digest ----------------------------------------------------------------------------------


def test_a_raven_message_through_the_store_endpoint_is_titled_filled_in(stack: Stack) -> None:
    """raven-python's shape, as it posted to ``/api/N/store/``: the legacy interface with printf params."""
    first, second = (
        {
            "event_id": new_id(),
            "platform": "python",
            "level": "error",
            "logger": "shop.payments",
            "sentry.interfaces.Message": {"message": "payment %s declined by %s", "params": [payment, "acquirer"]},
        }
        for payment in ("p-41", "p-42")
    )
    for event in (first, second):
        response = stack.client.post("/api/1/store/", content=orjson.dumps(event), headers={"X-Sentry-Auth": AUTH})
        assert response.status_code == 200, response.text
    stack.digest()
    issue = stack.api(f"/issues/{issue_of(stack, first['event_id'])}").json()
    assert issue_of(stack, first["event_id"]) == issue_of(stack, second["event_id"])  # grouped on the template
    assert (issue["title"], issue["culprit"]) == ("payment p-42 declined by acquirer", "shop.payments")
    listed = stack.api(f"/issues/{issue['id']}/events").json()["data"]
    assert sorted(event["title"] for event in listed) == [
        "payment p-41 declined by acquirer",
        "payment p-42 declined by acquirer",
    ]
