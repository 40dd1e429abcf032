"""Projects and their DSN keys, users and API tokens: the administrative records, shared by CLI and API."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, Row, delete, func, insert, select, update

from stackwatch.server.alerts.store import create_default_alerts
from stackwatch.server.digest.grouping import CURRENT, STRATEGIES, TRANSITION_DAYS
from stackwatch.server.digest.grouping.rules import ProjectRules, RuleError
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import TOKEN_SCOPES, api_tokens, project_keys, project_members, projects, users

__all__ = [
    "ADMIN_PASSWORD_FILE",
    "FIRST_ADMIN_EMAIL",
    "GROUPING_SETTINGS",
    "MIN_PASSWORD_LENGTH",
    "PROJECT_SETTINGS",
    "ProjectInfo",
    "Token",
    "add_member",
    "authenticate",
    "check_password",
    "create_project",
    "create_token",
    "create_user",
    "dsn",
    "end_sessions",
    "ensure_defaults",
    "find_token",
    "find_user",
    "forget_admin_password",
    "hash_password",
    "list_tokens",
    "project_dsn",
    "read_admin_password",
    "remove_member",
    "revoke_token",
    "set_password",
    "touch_token",
    "update_grouping",
    "update_project",
    "verify_password",
    "write_admin_password",
]

_HASHER = PasswordHasher()
TOKEN_PREFIX = "swt_"
MIN_PASSWORD_LENGTH = 8
# Written at first start, in the data directory: the generated administrator's email and password.
ADMIN_PASSWORD_FILE = "admin-password"
FIRST_ADMIN_EMAIL = "admin@stackwatch.local"  # the administrator an empty database gets (``ensure_defaults``)


class AccountError(ValueError):
    """A request that cannot be carried out (duplicate name, bad email); the message says why."""


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    id: int
    slug: str
    name: str
    public_key: str


def dsn(base_url: str, public_key: str, project_id: int) -> str:
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{public_key}@{parts.netloc}{path}/{project_id}"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50]
    return slug or "project"


def create_project(connection: Connection, name: str, *, public_key: str | None = None) -> ProjectInfo:
    name = name.strip()
    if not name:
        raise AccountError("a project needs a name")
    base = slugify(name)
    slug = base
    taken = set(connection.execute(select(projects.c.slug).where(projects.c.slug.like(f"{base}%"))).scalars())
    suffix = 2
    while slug in taken:
        slug = f"{base}-{suffix}"
        suffix += 1
    project_id = connection.execute(
        insert(projects)
        .values(slug=slug, name=name[:200], collect_ips=True, created_at=now(), grouping_version=CURRENT)
        .returning(projects.c.id)
    ).scalar_one()
    public_key = create_key(connection, project_id, public_key=public_key)
    create_default_alerts(connection, project_id)
    return ProjectInfo(project_id, slug, name, public_key)


PROJECT_SETTINGS = ("collect_ips", "scrub_emails", "scrub_ips", "retention_days", "max_events")
# Retention settings: NULL means the server-wide setting; the bounds are those of STACKWATCH_RETENTION_*.
RETENTION_BOUNDS = {"retention_days": (1, 36_500), "max_events": (0, 10**9)}


def update_project(connection: Connection, slug: str, **settings: bool | int | None) -> bool:
    """Change a project's settings (see ``PROJECT_SETTINGS``); ``False`` when there is no such project.

    Privacy settings apply to events digested from then on; what is stored already is not rewritten. Retention
    settings (``None``: back to the server-wide one) apply from the worker's next pass.
    """
    unknown = set(settings) - set(PROJECT_SETTINGS)
    if unknown:
        raise AccountError(f"unknown project setting: {', '.join(sorted(unknown))}")
    for name, value in settings.items():
        if name in RETENTION_BOUNDS:
            low, high = RETENTION_BOUNDS[name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
            ):
                raise AccountError(f"{name} must be an integer from {low:,} to {high:,}, or null for the server's")
        elif not isinstance(value, bool):
            raise AccountError(f"{name} must be true or false")
    exists = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).first() is not None
    if exists and settings:
        connection.execute(update(projects).where(projects.c.slug == slug).values(**settings))
    return exists


GROUPING_SETTINGS = ("grouping_version", "stacktrace_rules", "fingerprint_rules")
MAX_RULES_TEXT = 64 * 1024  # characters of one kind of rules


def update_grouping(
    connection: Connection,
    slug: str,
    *,
    grouping_version: int | None = None,
    stacktrace_rules: str | None = None,
    fingerprint_rules: str | None = None,
    moment: float | None = None,
) -> bool:
    """Change how a project groups its events from the next batch on; ``False`` when there is no such project.

    ``None`` leaves a setting as it is. Rules are parsed first: a line that does not parse raises ``AccountError``
    naming it, and nothing changes. A new version starts a transition from the one in force (see
    ``grouping.TRANSITION_DAYS``): until it ends, an event whose new hash finds no issue joins the issue its
    old hash finds, so switching never splits an issue.
    """
    row = connection.execute(
        select(projects.c.grouping_version, projects.c.stacktrace_rules, projects.c.fingerprint_rules).where(
            projects.c.slug == slug
        )
    ).first()
    if row is None:
        return False
    values: dict[str, Any] = {}
    for name, text in (("stacktrace_rules", stacktrace_rules), ("fingerprint_rules", fingerprint_rules)):
        if text is not None:
            if len(text) > MAX_RULES_TEXT:
                raise AccountError(f"{name} must be at most {MAX_RULES_TEXT:,} characters")
            values[name] = text.strip() or None
    stack = values.get("stacktrace_rules", row.stacktrace_rules)
    fingerprint = values.get("fingerprint_rules", row.fingerprint_rules)
    try:
        ProjectRules.parse(stack, fingerprint)
    except RuleError as error:
        raise AccountError(str(error)) from None
    if grouping_version is not None and grouping_version != row.grouping_version:
        if isinstance(grouping_version, bool) or grouping_version not in STRATEGIES:
            known = ", ".join(str(version) for version in sorted(STRATEGIES))
            raise AccountError(f"grouping_version must be one of {known}")
        values["grouping_version"] = grouping_version
        values["grouping_previous"] = row.grouping_version
        values["grouping_transition_until"] = (now() if moment is None else moment) + TRANSITION_DAYS * 86_400.0
    if values:
        connection.execute(update(projects).where(projects.c.slug == slug).values(**values))
    return True


def create_key(
    connection: Connection, project_id: int, label: str = "Default", *, public_key: str | None = None
) -> str:
    public_key = public_key or secrets.token_hex(16)
    connection.execute(
        insert(project_keys).values(
            project_id=project_id, public_key=public_key, label=label, active=True, created_at=now()
        )
    )
    return public_key


def project_dsn(connection: Connection, base_url: str, project_id: int) -> str:
    key = connection.execute(
        select(project_keys.c.public_key)
        .where(project_keys.c.project_id == project_id, project_keys.c.active.is_(True))
        .order_by(project_keys.c.id)
    ).scalar()
    if key is None:
        raise AccountError(f"project {project_id} has no active key")
    return dsn(base_url, key, project_id)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except VerificationError:
        return False


def check_password(password: str) -> None:
    """The rules every new password follows (``user create``, ``user set-password``, the dashboard's form)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def create_user(connection: Connection, email: str, password: str, *, admin: bool = False) -> int:
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise AccountError(f"not an email address: {email!r}")
    check_password(password)
    if connection.execute(select(users.c.id).where(users.c.email == email)).first():
        raise AccountError(f"a user {email} already exists")
    return int(
        connection.execute(
            insert(users)
            .values(email=email, password_hash=hash_password(password), is_admin=admin, created_at=now())
            .returning(users.c.id)
        ).scalar_one()
    )


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def authenticate(connection: Connection, email: str, password: str) -> int | None:
    """The user's id when the password is theirs.

    An unknown email costs one Argon2 verification too, so that the time taken does not tell who has an account.
    """
    row = connection.execute(
        select(users.c.id, users.c.password_hash).where(users.c.email == email.strip().lower())
    ).first()
    if row is None:
        verify_password(_dummy_hash(), password)
        return None
    return int(row.id) if verify_password(row.password_hash, password) else None


def end_sessions(connection: Connection, user_id: int) -> int:
    """Every dashboard session of the user ends (their cookies carry the old ``session_version``); returns the new
    version, for a session that is to go on (the dashboard's password change)."""
    connection.execute(update(users).where(users.c.id == user_id).values(session_version=users.c.session_version + 1))
    return int(connection.execute(select(users.c.session_version).where(users.c.id == user_id)).scalar_one())


def find_user(connection: Connection, email: str) -> int:
    """The id of the user with this email; ``AccountError`` when there is none."""
    found = connection.execute(select(users.c.id).where(users.c.email == email.strip().lower())).scalar()
    if found is None:
        raise AccountError(f"no user {email.strip().lower()}")
    return int(found)


def set_password(connection: Connection, user_id: int, password: str) -> int:
    """Give the user a new password and end every session they have; returns the new session version."""
    check_password(password)
    connection.execute(update(users).where(users.c.id == user_id).values(password_hash=hash_password(password)))
    return end_sessions(connection, user_id)


def write_admin_password(data_dir: Path, password: str) -> Path:
    """Keep the first administrator's generated password in the data directory (0600): the password alone, so
    that the line can be pasted as it is. It is ``FIRST_ADMIN_EMAIL``'s, the one account the first start makes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / ADMIN_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{password}\n")
    return path


def read_admin_password(data_dir: Path) -> tuple[str, str] | None:
    """(e-mail, password) from the first start's password file, ``None`` without one (or one we cannot read).

    It holds the password alone, of ``FIRST_ADMIN_EMAIL``; files written by earlier versions hold "email password"
    on one line, and are read as such (the e-mail has no space, nor has a generated password)."""
    try:
        text = (data_dir / ADMIN_PASSWORD_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    if " " not in text:
        return FIRST_ADMIN_EMAIL, text
    email, _, password = text.partition(" ")
    return email.lower(), password.strip()


def forget_admin_password(data_dir: Path, email: str) -> None:
    """Remove the first start's password file once that account's password has changed: it no longer holds it."""
    kept = read_admin_password(data_dir)
    if kept is None or kept[0] != email.strip().lower():
        return
    with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: nothing to forget
        (data_dir / ADMIN_PASSWORD_FILE).unlink()


def _member_ids(connection: Connection, slug: str, email: str) -> tuple[int, int]:
    project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
    if project_id is None:
        raise AccountError(f"no project {slug!r}")
    return int(project_id), find_user(connection, email)


def add_member(connection: Connection, slug: str, email: str) -> bool:
    """Let the user see the project on the dashboard; ``False`` when they already could."""
    project_id, member = _member_ids(connection, slug, email)
    known = select(project_members).where(
        project_members.c.project_id == project_id, project_members.c.user_id == member
    )
    if connection.execute(known).first() is not None:
        return False
    connection.execute(insert(project_members).values(project_id=project_id, user_id=member))
    return True


def remove_member(connection: Connection, slug: str, email: str) -> bool:
    """``False`` when the user was not a member."""
    project_id, member = _member_ids(connection, slug, email)
    result = connection.execute(
        delete(project_members).where(project_members.c.project_id == project_id, project_members.c.user_id == member)
    )
    return result.rowcount > 0


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(connection: Connection, name: str = "api", user_id: int | None = None, *, scope: str = "admin") -> str:
    """Make a new API token; only its hash is stored, so this is the one time it can be shown."""
    if scope not in TOKEN_SCOPES:
        raise AccountError(f"unknown token scope {scope!r}: expected {' or '.join(TOKEN_SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    connection.execute(
        insert(api_tokens).values(
            name=name[:200],
            token_hash=_token_hash(token),
            prefix=token[:12],
            user_id=user_id,
            scope=scope,
            created_at=now(),
        )
    )
    return token


@dataclass(frozen=True, slots=True)
class Token:
    """An API token as listed: never the token itself, which is not stored."""

    id: int
    name: str
    scope: str
    prefix: str
    user_id: int | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def _tokens(rows: Iterable[Row[Any]]) -> list[Token]:
    return [
        Token(int(r.id), r.name, r.scope, r.prefix, r.user_id, float(r.created_at), r.last_used_at, r.revoked_at)
        for r in rows
    ]


def find_token(connection: Connection, token: str) -> Token | None:
    """The token's record when the token is valid and not revoked."""
    query = select(api_tokens).where(api_tokens.c.token_hash == _token_hash(token), api_tokens.c.revoked_at.is_(None))
    found = _tokens(connection.execute(query))
    return found[0] if found else None


def list_tokens(connection: Connection, *, user_id: int | None = None, include_revoked: bool = True) -> list[Token]:
    """Every token (or the user's), newest first."""
    query = select(api_tokens).order_by(api_tokens.c.id.desc())
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return _tokens(connection.execute(query))


def revoke_token(connection: Connection, token_id: int, *, user_id: int | None = None) -> bool:
    """Stop a token (of the user, when given) at once; ``False`` when it was revoked already. The record stays."""
    mine = [api_tokens.c.id == token_id]
    if user_id is not None:
        mine.append(api_tokens.c.user_id == user_id)
    # Ids beyond the 32-bit column cannot exist; PostgreSQL would refuse to compare them.
    row = None if not 0 < token_id < 2**31 else connection.execute(select(api_tokens.c.revoked_at).where(*mine)).first()
    if row is None:
        raise AccountError(f"no API token {token_id}")
    if row.revoked_at is not None:
        return False
    connection.execute(update(api_tokens).where(*mine).values(revoked_at=now()))
    return True


def touch_token(connection: Connection, token_id: int, moment: float) -> None:
    connection.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=moment))


@dataclass(frozen=True, slots=True)
class FirstStart:
    project: ProjectInfo | None
    admin_email: str | None
    admin_password: str | None


def ensure_defaults(connection: Connection) -> FirstStart:
    """On an empty database: a default project and an administrator with a generated password."""
    project = None
    if connection.execute(select(func.count()).select_from(projects)).scalar_one() == 0:
        project = create_project(connection, "Default")
    email = password = None
    if connection.execute(select(func.count()).select_from(users)).scalar_one() == 0:
        email, password = FIRST_ADMIN_EMAIL, secrets.token_urlsafe(12)
        create_user(connection, email, password, admin=True)
    return FirstStart(project, email, password)
