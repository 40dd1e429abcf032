"""Where alert channels may connect. Checked when a channel is saved (REST API, CLI, settings page), and when a
message is sent, on the address actually connected to, for every channel kind and Apprise plugin: private
addresses when STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off, link-local and metadata addresses always. A
channel test never returns or stores what the target answered."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from stackwatch.server.alerts import targets
from stackwatch.server.alerts.channels import MODULES, ChannelError, apprise_url
from stackwatch.server.alerts.message import Notification
from stackwatch.server.app import create_app
from stackwatch.server.config import Settings, load_settings
from stackwatch.server.services import Services
from stackwatch.server.storage.schema import alert_channels
from tests.alert_support import Answer, RecordingHandler, RecordingServer, smtp_server
from tests.conftest import Stack, seed
from tests.test_alerts_cli import Cli, cli  # noqa: F401 - the fixture
from tests.test_web_settings import SETTINGS, admin, error_text, post

PUBLIC, PRIVATE, NEVER = "public", "private", "never"
OFF = "STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off"
NEVER_REACH = "which alert channels never reach"

# (kind, URL, class): what saving the channel must do. Private: refused when the setting is off, saved when on;
# never: refused either way; public: saved either way (names that do not resolve here pass, like a new domain).
SAVED_OR_REFUSED: list[tuple[str, str, str]] = [
    ("webhook", "https://93.184.215.14/hook", PUBLIC),
    ("webhook", "https://hooks.unknown.invalid/hook", PUBLIC),
    ("webhook", "http://127.0.0.1:9/hook", PRIVATE),
    ("webhook", "http://localhost:9/hook", PRIVATE),  # a name that resolves to loopback
    ("webhook", "http://2130706433:9/hook", PRIVATE),  # decimal
    ("webhook", "http://0177.0.0.1:9/hook", PRIVATE),  # octal
    ("webhook", "http://0x7f.0.0.1:9/hook", PRIVATE),  # hex
    ("webhook", "http://127.1:9/hook", PRIVATE),  # short form
    ("webhook", "http://[::1]:9/hook", PRIVATE),
    ("webhook", "http://[::ffff:127.0.0.1]:9/hook", PRIVATE),  # IPv4-mapped
    ("webhook", "http://[::ffff:7f00:1]:9/hook", PRIVATE),  # IPv4-mapped, in hex
    ("webhook", "http://[64:ff9b::7f00:1]:9/hook", PRIVATE),  # NAT64
    ("webhook", "http://10.1.2.3/hook", PRIVATE),
    ("webhook", "http://100.64.0.1/hook", PRIVATE),  # carrier-grade NAT
    ("webhook", "http://[fd12:3456::1]/hook", PRIVATE),  # unique local
    ("webhook", "http://169.254.169.254/latest/meta-data/", NEVER),
    ("webhook", "http://2852039166/latest/meta-data/", NEVER),  # 169.254.169.254 in decimal
    ("webhook", "http://0xa9.0xfe.0xa9.0xfe/", NEVER),  # … in hex
    ("webhook", "http://[::ffff:169.254.169.254]/", NEVER),
    ("webhook", "http://[::ffff:a9fe:a9fe]/", NEVER),
    ("webhook", "http://[64:ff9b::a9fe:a9fe]/", NEVER),
    ("webhook", "http://[2002:a9fe:a9fe::1]/", NEVER),  # 6to4
    ("webhook", "http://[fe80::1]/", NEVER),
    ("webhook", "http://[fd00:ec2::254]/", NEVER),
    ("webhook", "http://100.100.100.200/latest/meta-data/", NEVER),
    ("webhook", "http://metadata.google.internal/computeMetadata/v1/", NEVER),
    ("webhook", "http://metadata/computeMetadata/v1/", NEVER),
    ("webhook", "http://0.0.0.0:9/hook", NEVER),
    ("webhook", "http://0:9/hook", NEVER),
    ("webhook", "http://[::]:9/hook", NEVER),
    ("slack", "https://hooks.unknown.invalid/services/T0/B0/x", PUBLIC),
    ("slack", "http://127.0.0.1:9/services/T0/B0/x", PRIVATE),
    ("slack", "http://169.254.169.254/services/T0/B0/x", NEVER),
    # Apprise: schemes whose host is the server (checked before only for 16 schemes), services with a host of
    # their own, an SMTP server given as a parameter, a plugin that delivers to no server at all.
    ("apprise", "discord://123456/webhooktoken", PUBLIC),
    ("apprise", "json://127.0.0.1:9/alerts", PRIVATE),
    ("apprise", "json://2130706433/alerts", PRIVATE),
    ("apprise", "json://[::1]/alerts", PRIVATE),
    ("apprise", "hassio://127.0.0.1/accesstoken", PRIVATE),
    ("apprise", "ncloud://user:pass@127.0.0.1/target", PRIVATE),
    ("apprise", "bark://127.0.0.1/device", PRIVATE),
    ("apprise", "toot://token@127.0.0.1", PRIVATE),
    ("apprise", "signal://127.0.0.1/+15551234567/+15557654321", PRIVATE),
    ("apprise", "gotify://localhost/token", PRIVATE),
    ("apprise", "mailto://user:pass@example.com?smtp=127.0.0.1&from=a@example.com&to=b@example.com", PRIVATE),
    ("apprise", "rsyslog://127.0.0.1", PRIVATE),
    ("apprise", "syslog://", PRIVATE),  # no server: where it delivers cannot be checked
    ("apprise", "json://169.254.169.254/alerts", NEVER),
    ("apprise", "hassio://169.254.169.254/accesstoken", NEVER),
    ("apprise", "bark://2852039166/device", NEVER),
    ("apprise", "ntfy://[::ffff:169.254.169.254]/topic", NEVER),
    ("apprise", "json://metadata.google.internal/alerts", NEVER),
    ("apprise", "mailto://user:pass@example.com?smtp=169.254.169.254&from=a@example.com&to=b@example.com", NEVER),
    ("apprise", "json://0.0.0.0:9/alerts", NEVER),
]


def config_of(kind: str, url: str) -> dict[str, Any]:
    return {"url": url, "secret": "s" * 24} if kind == "webhook" else {"url": url}


def mismatches(save: Callable[[str, str], str | None], *, allow_private: bool) -> list[tuple[str, str, str]]:
    """Rows of the table where ``save(kind, url)`` (the refusal's message, or None when saved) is not right."""
    wrong = []
    for kind, url, where in SAVED_OR_REFUSED:
        refused = save(kind, url)
        if where == NEVER:
            right = refused is not None and NEVER_REACH in refused
        elif where == PRIVATE and not allow_private:
            right = refused is not None and OFF in refused
        else:
            right = refused is None
        if not right:
            wrong.append((kind, url, refused or "saved"))
    return wrong


@pytest.fixture(params=[False, True], ids=["private-refused", "private-allowed"])
def allow_private(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def api(settings: Settings, services: Services, allow_private: bool) -> Iterator[Stack]:
    """An in-process server (REST API and dashboard) with ``alerts_allow_private_targets`` as the test asks."""
    chosen = dataclasses.replace(settings, alerts_allow_private_targets=allow_private)
    token = seed(services)
    app = create_app(chosen, services, run_worker=False)
    with TestClient(app) as client:
        yield Stack(chosen, services, app, client, token)


def call(stack: Stack, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {stack.token}"}
    return stack.client.request(method, f"/api/v1{path}", json=body, headers=headers)


def test_saving_through_the_rest_api(api: Stack, allow_private: bool) -> None:
    def save(kind: str, url: str) -> str | None:
        body = {"name": "target", "kind": kind, "config": config_of(kind, url)}
        answer = call(api, "POST", "/projects/python/alert-channels", body)
        assert answer.status_code in (201, 422), answer.text
        return None if answer.status_code == 201 else str(answer.json()["detail"])

    assert mismatches(save, allow_private=allow_private) == []
    with api.services.engine.connect() as connection:
        stored = [json.loads(row.config).get("url") for row in connection.execute(alert_channels.select())]
    expected = {url for _, url, where in SAVED_OR_REFUSED if where == PUBLIC or (where == PRIVATE and allow_private)}
    assert expected <= set(stored) and not {url for _, url, where in SAVED_OR_REFUSED if where == NEVER} & set(stored)


def test_saving_through_the_settings_page(api: Stack, allow_private: bool) -> None:
    client = admin(api)

    def save(kind: str, url: str) -> str | None:
        answer = post(client, f"{SETTINGS}/channels", {"name": "target", "kind": kind, **config_of(kind, url)})
        assert answer.status_code in (303, 400), answer.text
        return None if answer.status_code == 303 else error_text(answer)

    assert mismatches(save, allow_private=allow_private) == []


def test_saving_through_the_cli(cli: Cli, allow_private: bool) -> None:  # noqa: F811 - the fixture
    env = {"STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS": "true" if allow_private else "false"}

    def save(kind: str, url: str) -> str | None:
        config = json.dumps(config_of(kind, url))
        result = cli("alert", "channel", "create", "orders", "target", "--kind", kind, "--config", config, env=env)
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
        return None if result.exit_code == 0 else result.output.strip().splitlines()[-1]

    assert mismatches(save, allow_private=allow_private) == []


def test_address_classes_cover_every_spelling() -> None:
    classes = {
        "93.184.215.14": targets.Reach.PUBLIC,
        "2606:4700::6810:84e5": targets.Reach.PUBLIC,
        "127.0.0.1": targets.Reach.PRIVATE,
        "::1": targets.Reach.PRIVATE,
        "::ffff:127.0.0.1": targets.Reach.PRIVATE,
        "::7f00:1": targets.Reach.PRIVATE,  # IPv4-compatible
        "::ffff:0:7f00:1": targets.Reach.PRIVATE,  # IPv4-translated
        "64:ff9b::7f00:1": targets.Reach.PRIVATE,
        "2002:7f00:1::1": targets.Reach.PRIVATE,
        "224.0.0.1": targets.Reach.PRIVATE,
        "255.255.255.255": targets.Reach.PRIVATE,
        "169.254.169.254": targets.Reach.NEVER,
        "169.254.170.2": targets.Reach.NEVER,  # ECS task metadata
        "fe80::1%eth0": targets.Reach.NEVER,
        "fd00:ec2::254": targets.Reach.NEVER,
        "100.100.100.200": targets.Reach.NEVER,
        "0.0.0.0": targets.Reach.NEVER,
        "::": targets.Reach.NEVER,
        "::ffff:169.254.169.254": targets.Reach.NEVER,
        "::a9fe:a9fe": targets.Reach.NEVER,
        "64:ff9b::a9fe:a9fe": targets.Reach.NEVER,
        "2002:a9fe:a9fe::1": targets.Reach.NEVER,
        "2001:0:4136:e378:8000:63bf:5601:5601": targets.Reach.NEVER,  # Teredo, client 169.254.169.254
    }
    assert {address: targets.verdict(address) for address in classes} == classes
    assert targets.verdict("metadata.google.internal") is None
    assert all(targets.is_metadata_name(n) for n in ("metadata.google.internal.", "METADATA.goog", "instance-data"))
    assert not targets.is_metadata_name("metadata.example.com")


# --- at send: the connection guard -------------------------------------------------------------------------------


class Receivers:
    """Local stand-ins for the services a channel can reach: HTTP on 127.0.0.1 and ::1, SMTP, UDP (syslog)."""

    def __init__(self, http: RecordingServer, http6: RecordingServer, smtp: RecordingHandler, smtp_port: int):
        self.http, self.http6, self.smtp, self.smtp_port = http, http6, smtp, smtp_port
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.datagrams = 0

    def url(self, template: str) -> str:
        ports = {"port": self.http.port, "port6": self.http6.port, "smtp": self.smtp_port}
        return template.format(**ports, udp=self.udp.getsockname()[1])

    def received(self) -> int:
        """Everything received so far; what a refused channel sends would be here before its send returned."""
        while True:
            try:
                self.udp.recv(65536)
            except BlockingIOError:
                break
            self.datagrams += 1
        return len(self.http.requests) + len(self.http6.requests) + len(self.smtp.received) + self.datagrams


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    handler = RecordingHandler()
    with RecordingServer() as http, RecordingServer(host="::1") as http6, smtp_server(handler) as smtp:
        found = Receivers(http, http6, handler, smtp.port)
        try:
            yield found
        finally:
            found.udp.close()


MAIL = "from=alerts@example.com&to=oncall@example.com&mode=insecure"
# Channels whose target is a local receiver, in every spelling that reaches it.
LOCAL_TARGETS = [
    ("webhook", "http://127.0.0.1:{port}/hook"),
    ("webhook", "http://localhost:{port}/hook"),
    ("webhook", "http://2130706433:{port}/hook"),
    ("webhook", "http://0x7f.0.0.1:{port}/hook"),
    ("webhook", "http://127.1:{port}/hook"),
    ("webhook", "http://[::ffff:127.0.0.1]:{port}/hook"),
    ("webhook", "http://[::1]:{port6}/hook"),
    ("slack", "http://127.0.0.1:{port}/services/T0/B0/x"),
    ("slack", "http://2130706433:{port}/services/T0/B0/x"),
    ("apprise", "json://127.0.0.1:{port}/alerts"),
    ("apprise", "json://localhost:{port}/alerts"),
    ("apprise", "json://[::1]:{port6}/alerts"),
    ("apprise", "hassio://127.0.0.1:{port}/accesstoken"),
    ("apprise", "ncloud://user:pass@127.0.0.1:{port}/target"),
    ("apprise", "bark://127.0.0.1:{port}/device"),
    ("apprise", "toot://token@127.0.0.1:{port}"),
    ("apprise", "signal://127.0.0.1:{port}/+15551234567/+15557654321"),
    ("apprise", "gotify://127.0.0.1:{port}/token"),
    ("apprise", "ntfy://127.0.0.1:{port}/topic"),
    ("apprise", "mailto://example.com?smtp=127.0.0.1&port={smtp}&" + MAIL),
    ("apprise", "rsyslog://127.0.0.1:{udp}"),
]
# The same receivers through "this host" addresses, which connect to the local machine: refused always.
NEVER_TARGETS = [
    ("webhook", "http://0.0.0.0:{port}/hook"),
    ("webhook", "http://0:{port}/hook"),
    ("webhook", "http://[::]:{port6}/hook"),
    ("slack", "http://0.0.0.0:{port}/services/T0/B0/x"),
    ("apprise", "json://0.0.0.0:{port}/alerts"),
    ("apprise", "json://[::]:{port6}/alerts"),
    ("apprise", "hassio://0.0.0.0:{port}/accesstoken"),
    ("apprise", "mailto://example.com?smtp=0.0.0.0&port={smtp}&" + MAIL),
    ("apprise", "rsyslog://0.0.0.0:{udp}"),
    ("webhook", "http://169.254.169.254/latest/meta-data/"),
    ("apprise", "json://169.254.169.254/alerts"),
]


def notification() -> Notification:
    moment = time.time()
    return Notification(
        idempotency_key="target-test",
        project="python",
        issue_id=1,
        title="TimeoutError",
        culprit="",
        level="error",
        status="unresolved",
        reason="New issue",
        first_seen=moment,
        last_seen=moment,
        url="",
    )


def make_settings(tmp_path: Path, *, allow_private: bool) -> Settings:
    env = {"STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS": str(allow_private).lower()}
    return load_settings({"data_dir": str(tmp_path / "data")}, env, server=False)


def send(kind: str, url: str, settings: Settings) -> ChannelError | None:
    """Send through a channel stored as given (saved before the setting changed, or by a name that moved)."""
    try:
        MODULES[kind].build(config_of(kind, url), settings).send(notification())
    except ChannelError as error:
        return error
    return None


@pytest.mark.parametrize(("kind", "template"), LOCAL_TARGETS)
def test_private_targets_are_refused_on_the_connected_address(
    receivers: Receivers, tmp_path: Path, kind: str, template: str
) -> None:
    url = receivers.url(template)
    error = send(kind, url, make_settings(tmp_path, allow_private=False))
    assert error is not None and error.permanent and f"a private address ({OFF})" in str(error), error
    assert receivers.received() == 0
    send(kind, url, make_settings(tmp_path, allow_private=True))  # may fail on the stand-in's answer: no matter
    deadline = time.monotonic() + 5
    while receivers.received() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receivers.received() >= 1, "the control: allowed, the same channel reaches the receiver"


@pytest.mark.parametrize("allow", [False, True], ids=["private-refused", "private-allowed"])
@pytest.mark.parametrize(("kind", "template"), NEVER_TARGETS)
def test_link_local_metadata_and_this_host_are_refused_at_send_whatever_the_setting(
    receivers: Receivers, tmp_path: Path, kind: str, template: str, allow: bool
) -> None:
    error = send(kind, receivers.url(template), make_settings(tmp_path, allow_private=allow))
    assert error is not None and error.permanent and NEVER_REACH in str(error), error
    assert receivers.received() == 0


@pytest.mark.parametrize(
    ("kind", "template"),
    [
        ("webhook", "http://localhost:{port}/hook"),
        ("slack", "http://localhost:{port}/services/T0/B0/x"),
        ("apprise", "json://localhost:{port}/alerts"),
        ("apprise", "hassio://localhost:{port}/accesstoken"),
    ],
)
@pytest.mark.parametrize("allow_private", [False], ids=["private-refused"])
def test_a_name_that_resolves_elsewhere_when_sent_is_refused_then(
    api: Stack, receivers: Receivers, monkeypatch: pytest.MonkeyPatch, kind: str, template: str
) -> None:
    """DNS rebinding: the name resolved to a public address when the channel was saved, to loopback when sent."""
    with monkeypatch.context() as dns:
        dns.setattr(targets, "resolve", lambda host, port: ["93.184.215.14"])
        body = {"name": "moving", "kind": kind, "config": config_of(kind, receivers.url(template))}
        created = call(api, "POST", "/projects/python/alert-channels", body)
    assert created.status_code == 201, created.text
    answer = call(api, "POST", f"/projects/python/alert-channels/{created.json()['id']}/test")
    assert answer.status_code == 502 and answer.json()["permanent"] is True, answer.text
    assert f"127.0.0.1 is a private address ({OFF})" in answer.json()["error"]
    assert receivers.received() == 0


SECRET_BODY = b'{"error": "db password hunter2-7d1e, token sk_live_51HxYzBODYSECRET", "trace": "at /srv/app.py"}'
SECRET_PARTS = ("hunter2", "sk_live", "BODYSECRET", "/srv/app.py", "trace")


@pytest.mark.parametrize(
    ("kind", "path"), [("webhook", "/hook"), ("slack", "/services/T0/B0/x"), ("apprise", "/alerts")]
)
def test_a_channel_test_never_returns_or_stores_the_answer(stack: Stack, kind: str, path: str) -> None:
    with RecordingServer() as receiver:
        receiver.default = Answer(500, SECRET_BODY, {"Content-Type": "application/json"})
        url = f"json://127.0.0.1:{receiver.port}{path}" if kind == "apprise" else f"{receiver.url}{path}"
        body = {"name": "failing", "kind": kind, "config": config_of(kind, url)}
        channel = call(stack, "POST", "/projects/python/alert-channels", body).json()["id"]
        answer = call(stack, "POST", f"/projects/python/alert-channels/{channel}/test")
        client = admin(stack)
        page = post(client, f"{SETTINGS}/channels/{channel}/test")
        assert len(receiver.requests) == 2, "the control: the target was reached and answered"
    assert answer.status_code == 502
    listed = call(stack, "GET", "/projects/python/alert-channels").text
    with stack.services.engine.connect() as connection:
        stored = connection.execute(alert_channels.select().where(alert_channels.c.id == channel)).one().last_error
    for where in (answer.text, listed, stored, error_text(page)):
        assert [part for part in SECRET_PARTS if part in where] == [], where
    error = answer.json()["error"]  # the status and a fixed reason instead
    assert ("HTTP 500 Internal Server Error" in error) if kind != "apprise" else ("delivery failed" in error)


def test_apprise_starts_threads_only_where_stackwatch_knows() -> None:
    """The guard follows Apprise's worker threads (they copy the caller's context) but not a thread a plugin
    starts itself: such plugins are refused (``OWN_THREAD_SCHEMES``). A new one makes this test fail."""
    import apprise

    root = Path(apprise.__file__).parent
    found = sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*.py") if "threading.Thread(" in path.read_text()
    )
    # utils/http.py: a watchdog that only closes connections past their deadline; it never opens one.
    assert found == ["plugins/xmpp/adapter.py", "utils/http.py"]
    assert {"xmpp", "xmpps"} == apprise_url.OWN_THREAD_SCHEMES
    with pytest.raises(ValueError, match="thread of its own"):
        apprise_url.validate({"url": "xmpp://user:pass@chat.example.com"})
