"""Projects and their DSN keys, users and API tokens: the administrative records, shared by CLI and API."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from stackwatch.server.alerts.store import create_default_alerts
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import api_tokens, project_keys, project_members, projects, users

__all__ = [
    "PROJECT_SETTINGS",
    "ProjectInfo",
    "add_member",
    "authenticate",
    "create_project",
    "create_token",
    "create_user",
    "dsn",
    "end_sessions",
    "ensure_defaults",
    "hash_password",
    "project_dsn",
    "remove_member",
    "token_owner",
    "touch_token",
    "update_project",
    "verify_password",
]

_HASHER = PasswordHasher()
TOKEN_PREFIX = "swt_"


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
        insert(projects).values(slug=slug, name=name[:200], collect_ips=True, created_at=now()).returning(projects.c.id)
    ).scalar_one()
    public_key = create_key(connection, project_id, public_key=public_key)
    create_default_alerts(connection, project_id)
    return ProjectInfo(project_id, slug, name, public_key)


PROJECT_SETTINGS = ("collect_ips", "scrub_emails", "scrub_ips")


def update_project(connection: Connection, slug: str, **settings: bool) -> bool:
    """Change a project's privacy settings (see ``PROJECT_SETTINGS``); ``False`` when there is no such project.

    They apply to events digested from then on; what is stored already is not rewritten.
    """
    unknown = set(settings) - set(PROJECT_SETTINGS)
    if unknown:
        raise AccountError(f"unknown project setting: {', '.join(sorted(unknown))}")
    exists = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).first() is not None
    if exists and settings:
        connection.execute(update(projects).where(projects.c.slug == slug).values(**settings))
    return exists


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


def create_user(connection: Connection, email: str, password: str, *, admin: bool = False) -> int:
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise AccountError(f"not an email address: {email!r}")
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
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


def end_sessions(connection: Connection, user_id: int) -> None:
    """Every dashboard session of the user ends (their cookies carry the old ``session_version``)."""
    connection.execute(update(users).where(users.c.id == user_id).values(session_version=users.c.session_version + 1))


def _member_ids(connection: Connection, slug: str, email: str) -> tuple[int, int]:
    project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
    if project_id is None:
        raise AccountError(f"no project {slug!r}")
    user_id = connection.execute(select(users.c.id).where(users.c.email == email.strip().lower())).scalar()
    if user_id is None:
        raise AccountError(f"no user {email.strip().lower()}")
    return int(project_id), int(user_id)


def add_member(connection: Connection, slug: str, email: str) -> bool:
    """Let the user see the project on the dashboard; ``False`` when they already could."""
    project_id, user_id = _member_ids(connection, slug, email)
    known = select(project_members).where(
        project_members.c.project_id == project_id, project_members.c.user_id == user_id
    )
    if connection.execute(known).first() is not None:
        return False
    connection.execute(insert(project_members).values(project_id=project_id, user_id=user_id))
    return True


def remove_member(connection: Connection, slug: str, email: str) -> bool:
    """``False`` when the user was not a member."""
    project_id, user_id = _member_ids(connection, slug, email)
    result = connection.execute(
        delete(project_members).where(project_members.c.project_id == project_id, project_members.c.user_id == user_id)
    )
    return result.rowcount > 0


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(connection: Connection, name: str = "api", user_id: int | None = None) -> str:
    """Make a new API token; only its hash is stored, so this is the one time it can be shown."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    connection.execute(
        insert(api_tokens).values(
            name=name[:200], token_hash=_token_hash(token), prefix=token[:12], user_id=user_id, created_at=now()
        )
    )
    return token


def token_owner(connection: Connection, token: str) -> int | None:
    """The id of the token row when the token is valid and not revoked."""
    row = connection.execute(
        select(api_tokens.c.id).where(api_tokens.c.token_hash == _token_hash(token), api_tokens.c.revoked_at.is_(None))
    ).first()
    return None if row is None else int(row.id)


def touch_token(connection: Connection, token_id: int) -> None:
    connection.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now()))


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
        email, password = "admin@stackwatch.local", secrets.token_urlsafe(12)
        create_user(connection, email, password, admin=True)
    return FirstStart(project, email, password)
