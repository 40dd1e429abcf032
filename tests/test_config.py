"""Settings: flags, then STACKWATCH_* variables, then *_FILE, then defaults; bad values name themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackwatch.server.config import ConfigError, load_settings, parse_size

PG_URL = "postgresql://stackwatch@db.internal:5432/stackwatch"


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "data")}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults(tmp_path: Path, base: dict[str, Any]) -> None:
    settings = load_settings(base, {})
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'stackwatch.sqlite3'}"
    assert settings.is_sqlite
    assert (settings.host, settings.port, settings.role) == ("127.0.0.1", 8000, "all")
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.rate_limit_per_minute == 0
    assert settings.max_body_bytes == 20 * 1024 * 1024
    assert settings.sqlite_synchronous == "FULL"
    assert (settings.max_header_bytes, settings.max_header_line_bytes, settings.max_headers) == (65536, 16384, 100)
    assert (settings.body_timeout, settings.keepalive_timeout) == (60, 5)
    assert settings.max_future_seconds == 60
    assert settings.runs_ingest and settings.runs_web and settings.runs_worker


def test_generated_secret_key_is_kept_in_the_data_dir(tmp_path: Path, base: dict[str, Any]) -> None:
    first = load_settings(base, {})
    assert len(first.secret_key) >= 32
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == first.secret_key
    assert key_file.stat().st_mode & 0o077 == 0
    assert load_settings(base, {}).secret_key == first.secret_key


def test_env_is_read(tmp_path: Path) -> None:
    env = {
        "STACKWATCH_DATA_DIR": str(tmp_path / "envdata"),
        "STACKWATCH_PORT": "9100",
        "STACKWATCH_HOST": "0.0.0.0",
        "STACKWATCH_ROLE": "Worker",
        "STACKWATCH_MAX_BODY_BYTES": "5MB",
        "STACKWATCH_RATE_LIMIT_PER_MINUTE": "600",
        "STACKWATCH_SQLITE_SYNCHRONOUS": "normal",
        "STACKWATCH_LOG_LEVEL": "DEBUG",
        "STACKWATCH_SECRET_KEY": "s3cret",
        "STACKWATCH_MAX_HEADER_BYTES": "32KB",
        "STACKWATCH_BODY_TIMEOUT": "300",
        "STACKWATCH_MAX_FUTURE_SECONDS": "7200",
    }
    settings = load_settings({}, env)
    assert settings.max_future_seconds == 7200
    assert (settings.max_header_bytes, settings.body_timeout) == (32 * 1024, 300)
    assert settings.data_dir == (tmp_path / "envdata").resolve()
    assert settings.port == 9100
    assert settings.role == "worker"
    assert not settings.runs_ingest and settings.runs_worker
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.rate_limit_per_minute == 600
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.log_level == "debug"
    assert settings.secret_key == "s3cret"
    assert settings.base_url == "http://127.0.0.1:9100"  # a wildcard address is not a URL to give out


def test_precedence_flag_env_file_default(tmp_path: Path, base: dict[str, Any]) -> None:
    port_file = write(tmp_path, "port", "9003\n")
    env_all = {"STACKWATCH_PORT": "9002", "STACKWATCH_PORT_FILE": port_file}
    assert load_settings({**base, "port": "9001"}, env_all).port == 9001
    assert load_settings({**base, "port": 9001}, env_all).port == 9001
    assert load_settings(base, env_all).port == 9002
    assert load_settings(base, {"STACKWATCH_PORT_FILE": port_file}).port == 9003
    assert load_settings(base, {"STACKWATCH_PORT": "", "STACKWATCH_PORT_FILE": port_file}).port == 9003
    assert load_settings(base, {"STACKWATCH_PORT_FILE": ""}).port == 8000
    assert load_settings({**base, "port": None}, {}).port == 8000  # an option not given on the command line


def test_secret_from_a_file(tmp_path: Path) -> None:
    key_file = write(tmp_path, "key", "  from-a-file \n")
    settings = load_settings(
        {"data_dir": str(tmp_path), "database_url": PG_URL}, {"STACKWATCH_SECRET_KEY_FILE": key_file}
    )
    assert settings.secret_key == "from-a-file"
    env = {"STACKWATCH_SECRET_KEY": "from-env", "STACKWATCH_SECRET_KEY_FILE": key_file}
    assert load_settings({"data_dir": str(tmp_path), "database_url": PG_URL}, env).secret_key == "from-env"


def test_unreadable_file_names_its_variable(tmp_path: Path, base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="STACKWATCH_SECRET_KEY_FILE"):
        load_settings(base, {"STACKWATCH_SECRET_KEY_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STACKWATCH_PORT", "http"),
        ("STACKWATCH_PORT", "0"),
        ("STACKWATCH_PORT", "65536"),
        ("STACKWATCH_ROLE", "everything"),
        ("STACKWATCH_DATABASE_URL", "mysql://localhost/db"),
        ("STACKWATCH_DATABASE_URL", "stackwatch.sqlite3"),
        ("STACKWATCH_BASE_URL", "errors.example.com"),
        ("STACKWATCH_MAX_BODY_BYTES", "lots"),
        ("STACKWATCH_MAX_BODY_BYTES", "0"),
        ("STACKWATCH_MAX_EVENT_BYTES", "-5"),
        ("STACKWATCH_MAX_ATTACHMENT_BYTES", "10 TB"),
        ("STACKWATCH_RATE_LIMIT_PER_MINUTE", "-1"),
        ("STACKWATCH_RATE_LIMIT_PER_MINUTE", "ten"),
        ("STACKWATCH_DIGEST_BATCH_SIZE", "0"),
        ("STACKWATCH_SQLITE_SYNCHRONOUS", "off"),
        ("STACKWATCH_LOG_LEVEL", "verbose"),
        ("STACKWATCH_MAX_HEADER_BYTES", "512"),
        ("STACKWATCH_MAX_HEADER_LINE_BYTES", "a lot"),
        ("STACKWATCH_MAX_HEADERS", "5"),
        ("STACKWATCH_BODY_TIMEOUT", "0"),
        ("STACKWATCH_BODY_TIMEOUT", "1.5"),
        ("STACKWATCH_KEEPALIVE_TIMEOUT", "3601"),
        ("STACKWATCH_TRUSTED_PROXIES", "proxy.internal"),
        ("STACKWATCH_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/33"),
        ("STACKWATCH_TRUSTED_PROXIES", "*"),
        ("STACKWATCH_MAX_FUTURE_SECONDS", "-1"),
        ("STACKWATCH_MAX_FUTURE_SECONDS", "1h"),
        ("STACKWATCH_MAX_FUTURE_SECONDS", "31536001"),
    ],
)
def test_bad_env_value_names_the_variable(base: dict[str, Any], variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(base, {variable: value})
    assert str(caught.value).startswith(variable + ":")


def test_bad_file_value_names_the_file_variable(tmp_path: Path, base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^STACKWATCH_PORT_FILE:"):
        load_settings(base, {"STACKWATCH_PORT_FILE": write(tmp_path, "port", "eighty")})


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        ({"port": "abc"}, "--port"),
        ({"port": 0}, "--port"),
        ({"port": 70000}, "--port"),
        ({"role": "boss"}, "--role"),
        ({"database_url": "oracle://x"}, "--database-url"),
    ],
)
def test_bad_flag_value_names_the_option(base: dict[str, Any], flags: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError, match=f"^{option}:"):
        load_settings({**base, **flags}, {})


def test_postgresql_requires_a_secret_key(base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="STACKWATCH_SECRET_KEY"):
        load_settings({**base, "database_url": PG_URL}, {})
    with pytest.raises(ConfigError, match="STACKWATCH_SECRET_KEY"):
        load_settings(base, {"STACKWATCH_DATABASE_URL": PG_URL})
    settings = load_settings({**base, "database_url": PG_URL}, {"STACKWATCH_SECRET_KEY": "k"})
    assert not settings.is_sqlite
    assert settings.secret_key == "k"


def test_database_url_forms(base: dict[str, Any]) -> None:
    env = {"STACKWATCH_SECRET_KEY": "k"}
    legacy = load_settings({**base, "database_url": "postgres://u@h/db"}, env)
    assert legacy.database_url == "postgresql://u@h/db"
    psycopg = load_settings({**base, "database_url": "postgresql+psycopg://u@h/db"}, env)
    assert psycopg.database_url == "postgresql+psycopg://u@h/db"
    assert load_settings({**base, "database_url": "sqlite:////tmp/x.db"}, env).is_sqlite


def test_base_url(base: dict[str, Any]) -> None:
    settings = load_settings(base, {"STACKWATCH_BASE_URL": "https://errors.example.com/stackwatch/"})
    assert settings.base_url == "https://errors.example.com/stackwatch"
    assert load_settings({**base, "host": "10.0.0.5", "port": "8080"}, {}).base_url == "http://10.0.0.5:8080"


def test_trusted_proxies(base: dict[str, Any]) -> None:
    assert load_settings(base, {}).trusted_proxies == ()  # nobody's forwarded headers are believed by default
    given = " 127.0.0.1 ,10.1.2.3/8,, ::1/128, 2001:db8::/32 "
    assert load_settings(base, {"STACKWATCH_TRUSTED_PROXIES": given}).trusted_proxies == (
        "127.0.0.1",
        "10.0.0.0/8",
        "::1",
        "2001:db8::/32",
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("512k", 512 * 1024),
        ("512KB", 512 * 1024),
        ("20MB", 20 * 1024**2),
        ("20 MiB", 20 * 1024**2),
        ("1g", 1024**3),
        ("100b", 100),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "1.5MB", "20 TB", "-1", "1 2"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_environment_is_os_environ_by_default(monkeypatch: pytest.MonkeyPatch, base: dict[str, Any]) -> None:
    monkeypatch.setenv("STACKWATCH_PORT", "9555")
    assert load_settings(base).port == 9555


def test_admin_commands_need_no_secret_key(tmp_path: Path, base: dict[str, Any]) -> None:
    settings = load_settings({**base, "database_url": PG_URL}, {}, server=False)
    assert settings.secret_key == ""
    load_settings(base, {}, server=False)
    assert not (tmp_path / "data" / "secret_key").exists()


def test_unusable_data_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(ConfigError, match=r"^STACKWATCH_DATA_DIR:.*Not a directory"):
        load_settings({"data_dir": str(blocker / "data")}, {})


def test_processes_starting_together_share_one_generated_secret_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(10):
        data_dir = tmp_path / f"data-{attempt}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = list(pool.map(lambda flags: load_settings(flags, {}).secret_key, [{"data_dir": str(data_dir)}] * 8))
        assert len(set(keys)) == 1 and keys[0], keys
        assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]


def test_secrets_are_not_in_the_settings_repr(tmp_path: Path) -> None:
    env = {"STACKWATCH_SECRET_KEY": "k-" + "s3cr3t" * 4, "STACKWATCH_SMTP_PASSWORD": "smtp-pa55word"}
    shown = repr(load_settings({"data_dir": str(tmp_path / "data")}, env))
    assert "s3cr3t" not in shown and "smtp-pa55word" not in shown
    assert "data_dir" in shown  # the rest is still there to debug with
