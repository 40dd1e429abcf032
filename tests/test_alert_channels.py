"""Alert channels against real receivers: aiosmtpd for e-mail, a recording HTTP server for Slack, webhook, Apprise."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import socket
import time
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from stackwatch import __version__
from stackwatch.server.alerts import channels, render, targets
from stackwatch.server.alerts.channels import MODULES, ChannelError, apprise_url, email, slack, webhook
from stackwatch.server.alerts.message import Notification
from stackwatch.server.config import ConfigError, Settings, load_settings
from tests.alert_support import RecordingHandler, RecordingServer, authenticator, self_signed_context
from tests.alert_support import smtp_server as running_smtp
from tests.conftest import ROOT, free_port

URL = "https://stackwatch.example.com/issues/1234"
TO = ["oncall@example.com", "dev@example.com"]


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "idempotency_key": "rule:7:issue:1234:1714567200",
        "project": "meshhook",
        "issue_id": 1234,
        "title": "TimeoutError: upstream did not answer",
        "culprit": "executor.http in call",
        "level": "error",
        "status": "unresolved",
        "reason": "Regression",
        "environment": "production",
        "release": "2.4.1",
        "component": "http-executor",
        "workflow_id": "wf_orders",
        "run_id": "run_8812",
        "step_id": "step_3",
        "event_count": 4123,
        "user_count": 17,
        "run_count": 25,
        "workflow_count": 2,
        "held_back": 37,
        "first_seen": 1714500000.0,
        "last_seen": 1714567190.0,
        "url": URL,
    }
    return Notification(**(values | overrides))


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    """Settings as the server reads them: from STACKWATCH_* variables."""
    env = {f"STACKWATCH_{name.upper()}": str(value) for name, value in values.items()}
    return load_settings({"data_dir": str(tmp_path / "data")}, env, server=False)


@pytest.fixture
def server() -> Any:
    with RecordingServer() as recording:
        yield recording


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return self_signed_context(tmp_path_factory.mktemp("tls"))


def smtp(tmp_path: Path, port: int, **values: Any) -> Settings:
    base = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", "smtp_timeout": 5}
    return make_settings(tmp_path, **(base | {"smtp_from": "Stackwatch <alerts@example.com>"} | values))


def send_mail(settings: Settings, n: Notification, to: list[str] = TO) -> None:
    email.build(email.validate({"to": to}), settings).send(n)


# --- e-mail -------------------------------------------------------------------------------------------------------


def test_email_arrives_with_subject_text_and_escaped_html(tmp_path: Path) -> None:
    handler = RecordingHandler()
    n = notification(title="<script>alert(1)</script> & more")
    with running_smtp(handler) as controller:
        send_mail(smtp(tmp_path, controller.port), n)
    [received] = handler.received
    assert received.mail_from == "alerts@example.com" and received.rcpt_tos == TO
    message = received.message
    assert message["Subject"] == "[Stackwatch] [production] ERROR: <script>alert(1)</script> & more"
    assert message["X-Stackwatch-Idempotency-Key"] == n.idempotency_key
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, page):
        assert "Regression" in part and "executor.http in call" in part and "http-executor" in part
        assert "4,123" in part and "and 37 more events" in part and URL in part
        assert "wf_orders / run_8812 / step_3" in part and "2024-05-01 12:39:50 UTC" in part
    assert "<script>alert(1)</script> & more" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page and "<img" not in page and "<style" not in page
    assert f'href="{URL}"' in page


def test_email_without_held_back_events_says_nothing_of_them(tmp_path: Path) -> None:
    handler = RecordingHandler()
    with running_smtp(handler) as controller:
        send_mail(smtp(tmp_path, controller.port), notification(held_back=0))
    assert "more event" not in handler.received[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_email_message_id_is_the_same_for_a_retried_notification(tmp_path: Path) -> None:
    handler = RecordingHandler()
    with running_smtp(handler) as controller:
        settings = smtp(tmp_path, controller.port)
        send_mail(settings, notification())
        send_mail(settings, notification())
        send_mail(settings, notification(idempotency_key="rule:7:issue:1234:1714567500"))
    first, retry, other = (received.message["Message-ID"] for received in handler.received)
    assert first == retry and first != other
    assert first.endswith("@example.com>")


def test_email_starttls_with_a_self_signed_certificate_and_login(tmp_path: Path, tls_context: Any) -> None:
    handler = RecordingHandler()
    password_file = tmp_path / "smtp_password"
    password_file.write_text("s3cret pass\n")
    options = {
        "tls_context": tls_context,
        "require_starttls": True,
        "authenticator": authenticator("alerts", "s3cret pass"),
    }
    with running_smtp(handler, **options) as controller:
        settings = smtp(
            tmp_path,
            controller.port,
            smtp_security="starttls",
            smtp_verify_tls=False,
            smtp_user="alerts",
            smtp_password_file=password_file,
        )
        assert settings.smtp_password == "s3cret pass"
        send_mail(settings, notification())
    [received] = handler.received
    assert received.tls and received.login == "alerts"


def test_email_ssl_mode(tmp_path: Path, tls_context: Any) -> None:
    handler = RecordingHandler()
    with running_smtp(handler, ssl_context=tls_context) as controller:
        send_mail(smtp(tmp_path, controller.port, smtp_security="ssl", smtp_verify_tls=False), notification())
    [received] = handler.received
    assert received.tls and received.rcpt_tos == TO


def test_email_refuses_an_unverifiable_certificate_unless_told_otherwise(tmp_path: Path, tls_context: Any) -> None:
    handler = RecordingHandler()
    with running_smtp(handler, tls_context=tls_context) as controller, pytest.raises(ChannelError) as failure:
        send_mail(smtp(tmp_path, controller.port, smtp_security="starttls"), notification())
    assert not failure.value.permanent and "STACKWATCH_SMTP_VERIFY_TLS" in str(failure.value)
    assert handler.received == []


def test_email_wrong_password_is_permanent_and_not_repeated(tmp_path: Path, tls_context: Any) -> None:
    handler = RecordingHandler()
    options = {"tls_context": tls_context, "authenticator": authenticator("alerts", "right")}
    with running_smtp(handler, **options) as controller, pytest.raises(ChannelError) as failure:
        settings = smtp(
            tmp_path,
            controller.port,
            smtp_security="starttls",
            smtp_verify_tls=False,
            smtp_user="alerts",
            smtp_password="wrong-Pa55word",
        )
        send_mail(settings, notification())
    assert failure.value.permanent and "authentication" in str(failure.value)
    assert "wrong-Pa55word" not in str(failure.value) and "wrong-Pa55word" not in repr(settings)
    assert handler.received == []


def test_email_starttls_not_offered_is_permanent(tmp_path: Path) -> None:
    with running_smtp(RecordingHandler()) as controller, pytest.raises(ChannelError) as failure:
        send_mail(smtp(tmp_path, controller.port, smtp_security="starttls"), notification())
    assert failure.value.permanent and "STARTTLS" in str(failure.value)


def test_email_refused_recipient_is_permanent(tmp_path: Path) -> None:
    handler = RecordingHandler(refuse=("nobody@example.com",))
    with running_smtp(handler) as controller, pytest.raises(ChannelError) as failure:
        send_mail(smtp(tmp_path, controller.port), notification(), to=["nobody@example.com"])
    assert failure.value.permanent and "nobody@example.com: 550" in str(failure.value)
    assert handler.received == []


def test_email_partly_refused_recipients_still_count_as_delivered(tmp_path: Path) -> None:
    handler = RecordingHandler(refuse=("nobody@example.com",))
    with running_smtp(handler) as controller:
        send_mail(smtp(tmp_path, controller.port), notification(), to=["nobody@example.com", "dev@example.com"])
    assert [received.rcpt_tos for received in handler.received] == [["dev@example.com"]]


@pytest.mark.parametrize(
    ("answer", "permanent"), [("451 4.3.0 Try again later", False), ("554 5.7.1 Rejected as spam", True)]
)
def test_email_answer_class_decides_whether_to_retry(tmp_path: Path, answer: str, permanent: bool) -> None:
    with running_smtp(RecordingHandler(data_answer=answer)) as controller, pytest.raises(ChannelError) as failure:
        send_mail(smtp(tmp_path, controller.port), notification())
    assert failure.value.permanent is permanent and answer.split()[0] in str(failure.value)


def test_email_nothing_listening_is_transient(tmp_path: Path) -> None:
    with pytest.raises(ChannelError) as failure:
        send_mail(smtp(tmp_path, free_port()), notification())
    assert not failure.value.permanent


def test_email_silent_server_times_out_as_transient(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(ChannelError) as failure:
            send_mail(smtp(tmp_path, silent.getsockname()[1], smtp_timeout=1), notification())
    assert not failure.value.permanent and time.monotonic() - started < 5


def test_email_without_smtp_settings_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match=r"SMTP is not configured \(STACKWATCH_SMTP_HOST\)") as failure:
        email.build({"to": TO}, make_settings(tmp_path))
    assert failure.value.permanent


# --- Slack --------------------------------------------------------------------------------------------------------


def slack_send(server: RecordingServer, settings: Settings, n: Notification) -> None:
    slack.build(slack.validate({"url": f"{server.url}/services/T000/B000/XXXX"}), settings).send(n)


def test_slack_posts_block_kit(server: RecordingServer, tmp_path: Path) -> None:
    n = notification()
    slack_send(server, make_settings(tmp_path), n)
    [request] = server.wait_for(1)
    assert (request.method, request.path) == ("POST", "/services/T000/B000/XXXX")
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["text"] == render.subject(n)
    header, culprit, fields, context, actions = body["blocks"]
    assert [block["type"] for block in body["blocks"]] == ["header", "section", "section", "context", "actions"]
    assert header["text"] == {"type": "plain_text", "text": n.title}
    assert culprit["text"] == {"type": "mrkdwn", "text": "executor.http in call"}
    assert [field["text"] for field in fields["fields"]] == [
        "*Level*\nerror",
        "*Environment*\nproduction",
        "*Component*\nhttp-executor",
        "*Workflow / run*\nwf_orders / run_8812 / step_3",
        "*Events*\n4,123",
        "*Users*\n17",
        "*Runs*\n25",
    ]
    assert context["elements"] == [{"type": "mrkdwn", "text": "Regression · meshhook · and 37 more events"}]
    [button] = actions["elements"]
    assert button["type"] == "button" and button["url"] == URL


def test_slack_escapes_mrkdwn_and_bounds_the_header(server: RecordingServer, tmp_path: Path) -> None:
    title = "<!channel> a & b " + "x" * 300
    n = notification(title=title, culprit="<https://evil.example|click here>", component="<@U123>")
    slack_send(server, make_settings(tmp_path), n)
    body = server.wait_for(1)[0].json()
    header, culprit, fields = body["blocks"][:3]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].startswith("<!channel> a & b")
    assert culprit["text"]["text"] == "&lt;https://evil.example|click here&gt;"
    assert "*Component*\n&lt;@U123&gt;" in [field["text"] for field in fields["fields"]]
    assert body["text"].startswith("[Stackwatch] [production] ERROR: &lt;!channel&gt; a &amp; b")
    mrkdwn = json.dumps([body["text"], body["blocks"][1:]])
    assert "<!channel>" not in mrkdwn and "<https://evil" not in mrkdwn and "<@U123>" not in mrkdwn


@pytest.mark.parametrize(
    ("status", "permanent"), [(500, False), (503, False), (429, False), (408, False), (404, True), (400, True)]
)
def test_slack_status_decides_whether_to_retry(
    server: RecordingServer, tmp_path: Path, status: int, permanent: bool
) -> None:
    server.answer(status, b"no_service " + b"y" * 500)
    with pytest.raises(ChannelError) as failure:
        slack_send(server, make_settings(tmp_path), notification())
    message = str(failure.value)
    assert failure.value.permanent is permanent and message.endswith(f"HTTP {status} {HTTPStatus(status).phrase}")
    assert "no_service" not in message and "XXXX" not in message


def test_slack_redirect_is_permanent_and_not_followed(server: RecordingServer, tmp_path: Path) -> None:
    server.answer(302, headers={"Location": f"{server.url}/elsewhere"})
    with pytest.raises(ChannelError, match="302") as failure:
        slack_send(server, make_settings(tmp_path), notification())
    assert failure.value.permanent
    assert [request.path for request in server.requests] == ["/services/T000/B000/XXXX"]


def test_slack_unreachable_is_transient(tmp_path: Path) -> None:
    channel = slack.build({"url": f"http://127.0.0.1:{free_port()}/services/x"}, make_settings(tmp_path))
    with pytest.raises(ChannelError) as failure:
        channel.send(notification())
    assert not failure.value.permanent


# --- webhook ------------------------------------------------------------------------------------------------------

# The receiver's check, exactly as docs/alerts.md shows it (test_the_docs_show_this_verifier keeps them equal).
MAX_AGE = 300  # seconds: refuse requests signed more than five minutes ago (or ahead)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """True when the request was signed with ``secret`` in the last five minutes."""
    timestamp = headers.get("x-stackwatch-timestamp", "")
    signature = headers.get("x-stackwatch-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, f"sha256={expected}")


def test_the_docs_show_this_verifier() -> None:
    docs = (ROOT / "docs" / "alerts.md").read_text()
    assert inspect.getsource(verify) in docs
    assert "MAX_AGE = 300  # seconds" in docs and "import hashlib\nimport hmac\nimport time\n" in docs


def test_webhook_is_signed_and_verifiable(server: RecordingServer, tmp_path: Path) -> None:
    config = webhook.validate({"url": f"{server.url}/hook"})
    assert len(config["secret"]) >= 32
    n = notification()
    webhook.build(config, make_settings(tmp_path)).send(n)
    [request] = server.wait_for(1)
    headers, body = request.headers, request.body
    assert verify(config["secret"], headers, body)
    assert not verify("another-secret-of-enough-length", headers, body)
    assert not verify(config["secret"], headers, body.replace(b"4123", b"4124"))
    stale = str(int(headers["x-stackwatch-timestamp"]) - MAX_AGE - 5)
    assert not verify(config["secret"], headers | {"x-stackwatch-timestamp": stale}, body)
    assert abs(int(headers["x-stackwatch-timestamp"]) - time.time()) < 60
    assert headers["x-stackwatch-idempotency-key"] == n.idempotency_key
    assert headers["user-agent"] == f"Stackwatch/{__version__}"
    assert headers["content-type"] == "application/json"
    payload = request.json()
    assert payload["type"] == "stackwatch.alert" and payload["idempotency_key"] == n.idempotency_key
    assert payload["notification"] == n.as_json()
    sent_at = datetime.fromisoformat(payload["sent_at"].replace("Z", "+00:00")).timestamp()
    assert sent_at == int(headers["x-stackwatch-timestamp"])


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_private_targets_refused_when_not_allowed(server: RecordingServer, tmp_path: Path, kind: str) -> None:
    closed = make_settings(tmp_path, alerts_allow_private_targets=False)
    for url in (f"{server.url}/hook", f"http://localhost:{free_port()}/hook"):
        with pytest.raises(ValueError, match=r"private address \(STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off\)"):
            channels.validate(kind, {"url": url}, settings=closed)
    config = channels.validate(kind, {"url": f"{server.url}/hook"})  # no settings: stored as given
    with pytest.raises(ChannelError, match=r"127\.0\.0\.1") as failure:
        MODULES[kind].build(config, closed).send(notification())
    assert failure.value.permanent and server.requests == []
    MODULES[kind].build(config, make_settings(tmp_path)).send(notification())
    assert len(server.wait_for(1)) == 1


def test_private_target_check_lets_public_and_unresolvable_names_be_saved(tmp_path: Path) -> None:
    closed = make_settings(tmp_path, alerts_allow_private_targets=False)
    assert targets.verdict("93.184.215.14") is targets.Reach.PUBLIC
    assert targets.verdict("::ffff:10.0.0.1") is targets.Reach.PRIVATE
    assert webhook.validate({"url": "https://93.184.215.14/hook"}, settings=closed)["url"]
    assert slack.validate({"url": "https://unknown.invalid/x"}, settings=closed)["url"]


# --- Apprise ------------------------------------------------------------------------------------------------------


def test_apprise_delivers_title_and_body(server: RecordingServer, tmp_path: Path) -> None:
    n = notification()
    config = apprise_url.validate({"url": f"json://127.0.0.1:{server.url.rsplit(':', 1)[1]}/alerts"})
    apprise_url.build(config, make_settings(tmp_path)).send(n)
    [request] = server.wait_for(1)
    assert (request.method, request.path) == ("POST", "/alerts")
    payload = request.json()
    assert payload["title"] == render.subject(n)
    assert "TimeoutError: upstream did not answer" in payload["message"]
    assert "and 37 more events" in payload["message"] and URL in payload["message"]


def test_apprise_failure_is_transient(server: RecordingServer, tmp_path: Path) -> None:
    server.default.status = 500
    config = apprise_url.validate({"url": f"json://127.0.0.1:{server.url.rsplit(':', 1)[1]}/alerts"})
    with pytest.raises(ChannelError) as failure:
        apprise_url.build(config, make_settings(tmp_path)).send(notification())
    assert not failure.value.permanent and "json://" in str(failure.value)
    assert len(server.requests) == 1


def test_apprise_private_targets_refused_when_not_allowed(server: RecordingServer, tmp_path: Path) -> None:
    closed = make_settings(tmp_path, alerts_allow_private_targets=False)
    url = f"json://127.0.0.1:{server.url.rsplit(':', 1)[1]}/alerts"
    with pytest.raises(ValueError, match="private address"):
        apprise_url.validate({"url": url}, settings=closed)
    with pytest.raises(ChannelError) as failure:
        apprise_url.build({"url": url}, closed).send(notification())
    assert failure.value.permanent and server.requests == []
    # The host of a discord:// URL is a webhook id, not a server: nothing to resolve or refuse.
    assert apprise_url.validate({"url": "discord://123456/token"}, settings=closed)


# --- configurations -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("email", [], "expected a JSON object"),
        ("email", {}, "to: expected a list"),
        ("email", {"to": "a@example.com"}, "to: expected a list"),
        ("email", {"to": []}, "to: expected a list of 1 to 50"),
        ("email", {"to": ["not-an-address"]}, "to: not an e-mail address: 'not-an-address'"),
        ("email", {"to": ["a@example.com\r\nBcc: x@example.com"]}, "to: not an e-mail address"),
        ("email", {"to": [f"u{i}@example.com" for i in range(51)]}, "to: at most 50 addresses"),
        ("email", {"to": ["a@example.com"], "cc": []}, "unknown field"),
        ("slack", {}, "url: required"),
        ("slack", {"url": "ftp://hooks.example.com/x"}, "url: expected an http:// or https:// URL"),
        ("slack", {"url": "https://"}, "url: expected an http:// or https:// URL"),
        ("slack", {"url": "https://hooks.example.com:99999/x"}, "url: expected an http:// or https:// URL"),
        ("webhook", {"url": "https://h.example.com", "secret": "short"}, "secret: expected 16 to 256"),
        ("webhook", {"url": "https://h.example.com", "secret": 12345678901234567}, "secret: expected 16 to 256"),
        ("webhook", {"url": "https://h.example.com", "secret": "set"}, "secret: expected 16 to 256"),
        ("apprise", {"url": "just some words"}, "url: required, an Apprise URL"),
        ("apprise", {"url": "notaservice://abc/def"}, "url: Apprise cannot use this notaservice:// URL"),
        ("apprise", {"url": "discord://"}, "url: Apprise cannot use this discord:// URL"),
        ("pagerduty-direct", {}, "unknown channel kind 'pagerduty-direct'"),
    ],
)
def test_bad_configurations_are_refused_with_a_reason(kind: str, config: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        channels.validate(kind, config)
    assert message in str(refused.value)


def test_email_addresses_are_normalized() -> None:
    assert email.validate({"to": [" Dev@Example.com ", "dev@example.com", "ops@example.com"]}) == {
        "to": ["Dev@Example.com", "ops@example.com"]
    }


@pytest.mark.parametrize(
    ("kind", "config", "secrets"),
    [
        ("slack", {"url": "https://hooks.slack.com/services/T0/B0/SLACKPATH"}, ["SLACKPATH", "/services"]),
        ("webhook", {"url": "https://u:USERPASS@h.example.com/p?token=QUERY"}, ["USERPASS", "QUERY"]),
        ("apprise", {"url": "discord://123456/DISCORDTOKEN"}, ["DISCORDTOKEN", "123456"]),
        ("apprise", {"url": "mailtos://user:MAILPASS@example.com"}, ["MAILPASS", "user"]),
        ("email", {"to": ["oncall@example.com"]}, []),
    ],
)
def test_public_configuration_holds_no_secret(kind: str, config: dict[str, Any], secrets: list[str]) -> None:
    stored = channels.validate(kind, config)
    shown = json.dumps(MODULES[kind].public(stored))
    for secret in [*secrets, stored.get("secret") or "never-empty"]:
        assert secret not in shown
    if kind == "webhook":
        assert json.loads(shown) == {"url": "https://h.example.com/…", "secret": "set"}
    if kind == "apprise":
        assert json.loads(shown)["url"].endswith("://…")


def test_registry() -> None:
    assert set(MODULES) == {"email", "slack", "webhook", "apprise"}
    assert all(kind == module.KIND for kind, module in MODULES.items())
    assert channels.get("slack") is slack and channels.get("apprise") is apprise_url
    with pytest.raises(ValueError, match="expected one of email, slack, webhook, apprise"):
        channels.get("sms")


# --- rendering and settings ---------------------------------------------------------------------------------------


def test_render_shared_wording() -> None:
    assert render.held_back_line(notification(held_back=0)) is None
    assert render.held_back_line(notification(held_back=1)) == "and 1 more event"
    assert render.held_back_line(notification(held_back=1234)) == "and 1,234 more events"
    long = render.subject(notification(title="line one\nline two " + "z" * 300, environment=None, level="fatal"))
    assert "\n" not in long and long.startswith("[Stackwatch] FATAL: line one line two")
    assert long.endswith("…") and len(long) == len("[Stackwatch] FATAL: ") + render.MAX_TITLE
    assert render.workflow(notification(workflow_id=None, run_id="run_1", step_id=None)) == "? / run_1"
    assert render.workflow(notification(workflow_id=None, run_id=None, step_id=None)) is None
    assert render.timestamp(0) == "unknown"
    body = render.text_body(notification(environment=None, component=None))
    assert "Environment" not in body and "Component" not in body and "Release:" in body


def test_alert_settings_defaults_and_validation(tmp_path: Path) -> None:
    defaults = make_settings(tmp_path)
    assert (defaults.smtp_host, defaults.smtp_port, defaults.smtp_security, defaults.smtp_timeout) == (
        "",
        587,
        "starttls",
        10,
    )
    assert defaults.smtp_verify_tls and defaults.alerts_allow_private_targets
    assert email.EmailChannel(TO, defaults).sender == f"stackwatch@{socket.gethostname()}"
    for name, value, complaint in [
        ("smtp_security", "tls", "STACKWATCH_SMTP_SECURITY: expected one of starttls, ssl, none"),
        ("smtp_port", "0", "STACKWATCH_SMTP_PORT"),
        ("smtp_from", "not an address", "STACKWATCH_SMTP_FROM: expected an address"),
        ("alerts_allow_private_targets", "maybe", "STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS"),
    ]:
        with pytest.raises(ConfigError, match=complaint):
            make_settings(tmp_path, **{name: value})
