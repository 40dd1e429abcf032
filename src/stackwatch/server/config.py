"""Settings, read once at start and validated.

Each setting comes from the first of: a command-line flag, the environment variable ``STACKWATCH_<NAME>``,
the file named by ``STACKWATCH_<NAME>_FILE`` (for secrets kept in files, e.g. Docker or systemd credentials),
and the default. A bad value fails at start with a message that names the setting and where it came from.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

__all__ = ["ROLES", "ConfigError", "Settings", "load_settings"]

ROLES = ("all", "ingest", "web", "worker")
ENV_PREFIX = "STACKWATCH_"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    role: str = "all"
    base_url: str = ""
    secret_key: str = dataclasses.field(default="", repr=False)
    max_body_bytes: int = 20 * 1024 * 1024
    max_envelope_bytes: int = 20 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    rate_limit_per_minute: int = 0
    # Attachments, Sentry's ``attachment`` rate-limit category: quotas per DSN key, counted apart from events (0 =
    # off; a key's own limits override them), and caps per envelope (see docs/ingest.md#attachments).
    attachment_rate_limit_per_minute: int = 600
    attachment_bytes_per_minute: int = 100 * 1024 * 1024
    max_envelope_attachments: int = 100
    max_envelope_attachment_bytes: int = 20 * 1024 * 1024
    digest_batch_size: int = 500
    sqlite_synchronous: str = "FULL"
    digest_process: bool = True
    log_level: str = "info"
    # Alert delivery: the e-mail channel's SMTP server, and whether channels may reach private networks.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = dataclasses.field(default="", repr=False)
    smtp_from: str = ""
    smtp_timeout: int = 10
    smtp_verify_tls: bool = True
    alerts_allow_private_targets: bool = True
    # Dashboard: a URL template into MeshHook's run console ("" = no links to MeshHook).
    meshhook_run_url: str = ""
    # Raw data at rest: days an envelope the digest could not store stays in the quarantine (sealed).
    quarantine_days: int = 14
    # Retention (server/retention.py): days an event is kept, events stored per project at most (0 = no count
    # limit), and seconds between the worker's pruning passes. Projects may set their own days and count.
    retention_days: int = 90
    retention_max_events: int = 100_000
    retention_interval: int = 60
    # Event timestamps more than this many seconds ahead of their receive time are clock skew: the digest stamps
    # the receive time and keeps the original in the event's _meta (digest/timestamps.py).
    max_future_seconds: int = 60
    # Disk: megabytes the store may take (SQLite files, or the PostgreSQL database); 0 = no limit. At 90 % the
    # retention pass evicts more eagerly, at 100 % ingest answers 429 (server/storage/disk.py).
    max_disk_mb: int = 0
    # HTTP: what a request's head may hold, how long a request may take to arrive, how long an idle connection
    # stays open (enforced in server/protocol.py, where the bytes arrive).
    max_header_bytes: int = 64 * 1024
    max_header_line_bytes: int = 16 * 1024
    max_headers: int = 100
    body_timeout: int = 60
    keepalive_timeout: int = 5
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs and CIDRs; none by default).
    trusted_proxies: tuple[str, ...] = ()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_ingest(self) -> bool:
        return self.role in ("all", "ingest")

    @property
    def runs_web(self) -> bool:
        return self.role in ("all", "web")

    @property
    def runs_worker(self) -> bool:
        return self.role in ("all", "worker")


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``"20MB"``, ``"512k"``, ``"1048576"`` → bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"expected a size such as 1048576, 512KB or 20MB, got {text!r}")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return value

    return parse


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _size_at_least(low: int, text: str) -> int:
    value = parse_size(text)
    if value < low:
        raise ValueError(f"must be at least {low} bytes, got {value}")
    return value


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _mail_from(text: str) -> str:
    address = parseaddr(text)[1]
    if "@" not in address or "\n" in text or "\r" in text:
        raise ValueError(f"expected an address such as alerts@example.com or 'Name <alerts@example.com>', got {text!r}")
    return text.strip()


def _database_url(text: str) -> str:
    if not re.match(r"^(sqlite|postgresql(\+psycopg)?|postgres)://", text):
        raise ValueError(f"expected sqlite:///PATH or postgresql://…, got {text!r}")
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    return text


def _url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.rstrip("/")


MESHHOOK_PLACEHOLDERS = ("run_id", "workflow_id", "step_id", "tenant")


def _meshhook_run_url(text: str) -> str:
    """A URL template such as ``https://meshhook.example.com/workflows/{workflow_id}/runs/{run_id}``."""
    text = text.strip()
    if not re.match(r"^https?://[^/\s]+", text) or any(c.isspace() for c in text):
        raise ValueError(f"expected an http(s) URL such as https://meshhook.example.com/runs/{{run_id}}, got {text!r}")
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"malformed braces in {text!r} ({exc}); write a literal brace as {{{{ or }}}}") from None
    allowed = ", ".join("{" + name + "}" for name in MESHHOOK_PLACEHOLDERS)
    for _, name, spec, conversion in parts:
        if name is not None and (name not in MESHHOOK_PLACEHOLDERS or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown} in {text!r}; the placeholders are {allowed}")
    return text


def _networks(text: str) -> tuple[str, ...]:
    """``"127.0.0.1, 10.0.0.0/8, ::1"`` → each entry as a normalized network; empty → none."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"expected IP addresses or CIDR networks such as 127.0.0.1 or 10.0.0.0/8, got {item!r}"
            ) from None
        found.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return tuple(found)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "data_dir": lambda text: Path(text).expanduser(),
    "database_url": _database_url,
    "host": str,
    "port": _int_in(1, 65535),
    "role": _choice(*ROLES),
    "base_url": _url,
    "secret_key": str,
    "max_body_bytes": _positive_size,
    "max_envelope_bytes": _positive_size,
    "max_event_bytes": _positive_size,
    "max_attachment_bytes": _positive_size,
    "rate_limit_per_minute": _int_in(0, 10**9),
    "attachment_rate_limit_per_minute": _int_in(0, 10**9),
    "attachment_bytes_per_minute": parse_size,
    "max_envelope_attachments": _int_in(1, 1000),  # an envelope holds at most 1,000 items (ingest.envelope)
    "max_envelope_attachment_bytes": _positive_size,
    "digest_batch_size": _int_in(1, 100_000),
    "sqlite_synchronous": lambda text: _choice("full", "normal")(text).upper(),
    "digest_process": _boolean,
    "log_level": _choice("debug", "info", "warning", "error"),
    "smtp_host": str.strip,
    "smtp_port": _int_in(1, 65535),
    "smtp_security": _choice("starttls", "ssl", "none"),
    "smtp_user": str,
    "smtp_password": str,
    "smtp_from": _mail_from,
    "smtp_timeout": _int_in(1, 300),
    "smtp_verify_tls": _boolean,
    "alerts_allow_private_targets": _boolean,
    "meshhook_run_url": _meshhook_run_url,
    "quarantine_days": _int_in(1, 3650),
    "retention_days": _int_in(1, 36_500),
    "retention_max_events": _int_in(0, 10**9),
    "retention_interval": _int_in(1, 86_400),
    "max_future_seconds": _int_in(0, 31_536_000),
    "max_disk_mb": _int_in(0, 10**9),
    "max_header_bytes": lambda text: _size_at_least(1024, text),
    "max_header_line_bytes": lambda text: _size_at_least(1024, text),
    "max_headers": _int_in(10, 10_000),
    "body_timeout": _int_in(1, 86_400),
    "keepalive_timeout": _int_in(1, 3_600),
    "trusted_proxies": _networks,
}


def _raw_value(name: str, flags: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, Any] | None:
    """Where a setting's value comes from, and the value as given."""
    if flags.get(name) is not None:
        return f"--{name.replace('_', '-')}", flags[name]
    var = ENV_PREFIX + name.upper()
    if env.get(var, "") != "":
        return var, env[var]
    file_var = var + "_FILE"
    if env.get(file_var, "") != "":
        try:
            return file_var, Path(env[file_var]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file_var}: cannot read {env[file_var]!r}: {exc.strerror}") from None
    return None


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, *, server: bool = True
) -> Settings:
    """Build and validate the settings; raise :class:`ConfigError` naming the first bad one.

    ``server=False`` is for administrative commands, which need no secret key.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field in fields(Settings):
        found = _raw_value(field.name, flags, env)
        if found is None:
            continue
        source, raw = found
        if isinstance(raw, (int, Path)) and not isinstance(raw, bool):
            raw = str(raw)  # typed flags (click's int and Path) are validated like text: --port 70000 is an error
        if not isinstance(raw, str):
            values[field.name] = raw
            continue
        try:
            values[field.name] = _PARSERS[field.name](raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    data_dir = Path(values.get("data_dir") or "./stackwatch-data").expanduser().resolve()
    values["data_dir"] = data_dir
    values.setdefault("database_url", f"sqlite:///{data_dir / 'stackwatch.sqlite3'}")
    settings = Settings(**values)
    if not settings.base_url:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        settings = replace(settings, base_url=f"http://{host}:{settings.port}")
    if server and not settings.secret_key:
        settings = replace(settings, secret_key=_default_secret_key(settings))
    return settings


def _default_secret_key(settings: Settings) -> str:
    """A single-machine install keeps a generated key in its data directory.

    Several processes on several machines (PostgreSQL) must share one key, so there it is required.
    """
    if not settings.is_sqlite:
        raise ConfigError(
            "STACKWATCH_SECRET_KEY: required when the database is PostgreSQL "
            "(set it, or STACKWATCH_SECRET_KEY_FILE, to the same random value on every process)"
        )
    path = settings.data_dir / "secret_key"
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            # Written whole under another name and linked into place: a second process starting at the same
            # moment either links first or reads a complete key, never an empty file.
            staged = settings.data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(staged, path)
            except FileExistsError:
                pass
            finally:
                staged.unlink()
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"STACKWATCH_DATA_DIR: cannot use {str(settings.data_dir)!r}: {exc.strerror}") from None
