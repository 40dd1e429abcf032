"""The settings pages: ``/projects/{slug}/settings`` (DSN keys, members, retention, alert channels and rules). See
docs/dashboard.md; the user's own pages (API tokens, password) are in ``account.py``.

Every project member may read a project's settings (they need its DSN); only administrators change them, and the
server refuses a non-administrator's ``POST`` with 403 whatever the page showed. Alert channels and rules are
validated, stored and shown by ``alerts.manage`` — the REST API's own functions — so a channel's secrets never
reach the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from sqlalchemy import Connection, select, update
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server.alerts import manage
from stackwatch.server.alerts.channels import MODULES as CHANNEL_KINDS
from stackwatch.server.alerts.dispatcher import channel_config, record_health, send_now
from stackwatch.server.alerts.store import DEFAULT_COOLDOWN_MINUTES, DEFAULT_HOURLY_CAP, IMPACT_KINDS
from stackwatch.server.api.alerts import channel_test_notification
from stackwatch.server.config import Settings, parse_size
from stackwatch.server.digest.grouping import CURRENT, STRATEGIES, moving_from
from stackwatch.server.digest.grouping.rules import ProjectRules, RuleError
from stackwatch.server.retention import Limits, stored_totals
from stackwatch.server.storage import accounts
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import (
    ALERT_TRIGGERS,
    LEVELS,
    alert_channels,
    project_keys,
    project_members,
    projects,
    users,
)
from stackwatch.server.web.access import ProjectRef, User, visible_project
from stackwatch.server.web.context import Web, WebRoute, clean, form, form_values, web
from stackwatch.server.web.issues import _not_found, project_for_page
from stackwatch.server.web.routes import current_user

__all__ = ["MAX_RATE_LIMIT", "build_settings_router"]

MAX_LABEL = 200
FORM_FILTERS = ("environment", "component", "level")  # the rule filters the page edits; others are kept as they are
MAX_RATE_LIMIT = 1_000_000  # events per minute; a larger number is a typing error, not a limit
MAX_ID = 2**31 - 1  # the id columns of keys, channels, rules and tokens are 32-bit integers
RATE_LIMIT_ERROR = (
    f"The rate limit must be a whole number of events per minute from 1 to {MAX_RATE_LIMIT}, "
    "or empty for the server-wide limit."
)
MAX_ATTACHMENT_BYTES_LIMIT = 2**40  # bytes per minute; 1 TB a minute is no limit
ATTACHMENT_RATE_ERROR = (
    f"The attachment rate limit must be a whole number of attachments per minute from 1 to {MAX_RATE_LIMIT}, "
    "or empty for the server-wide limit."
)
ATTACHMENT_BYTES_ERROR = (
    "The attachment bytes per minute must be a size such as 1048576, 512KB or 20MB, from 1 byte to 1TB, "
    "or empty for the server-wide limit."
)


class Invalid(ValueError):
    """A form that cannot be carried out; the message is shown on the page (400) and nothing is stored."""


class _FieldsInvalid(Invalid):
    """Refused fields of one form, by field name; each message is shown next to its field, all of them on top."""

    def __init__(self, fields: dict[str, str]):
        super().__init__(" ".join(fields.values()))
        self.fields = fields


class _Missing(LookupError):
    """A key, channel, rule or token id that is not in this project (or not the user's): 404."""


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) < 11) or not 0 < int(text) <= MAX_ID:
        raise _Missing
    return int(text)


def _label(value: str | None, what: str) -> str:
    text = clean(value)
    if not 1 <= len(text) <= MAX_LABEL:
        raise Invalid(f"The {what} must be 1 to {MAX_LABEL} characters long.")
    return text


def _rate_limit(value: str | None, error: str = RATE_LIMIT_ERROR) -> int | None:
    text = clean(value)
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not 1 <= int(text) <= MAX_RATE_LIMIT:
        raise Invalid(error)
    return int(text)


def _bytes_limit(value: str | None) -> int | None:
    text = clean(value)
    if not text:
        return None
    try:
        size = parse_size(text) if text.isascii() else 0
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_ATTACHMENT_BYTES_LIMIT:
        raise Invalid(ATTACHMENT_BYTES_ERROR)
    return size


def _attachment_limits(fields: Mapping[str, str]) -> dict[str, int | None]:
    """A key's own attachment quotas from a form (empty: the server-wide ones), as ``project_keys`` values."""
    return {
        "attachment_rate_limit_per_minute": _rate_limit(fields.get("attachment_rate_limit"), ATTACHMENT_RATE_ERROR),
        "attachment_bytes_per_minute": _bytes_limit(fields.get("attachment_bytes_limit")),
    }


def _retention_errors(settings: Settings) -> dict[str, str]:
    """The message for a refused retention field; the bounds are those ``accounts.update_project`` enforces."""
    (days_low, days_high), (events_low, events_high) = (
        accounts.RETENTION_BOUNDS["retention_days"],
        accounts.RETENTION_BOUNDS["max_events"],
    )
    return {
        "retention_days": f"Days kept must be a whole number from {days_low:,} to {days_high:,}, "
        f"or empty for the server default ({settings.retention_days:,}).",
        "max_events": f"Events kept must be a whole number from {events_low:,} (no limit) to {events_high:,}, "
        f"or empty for the server default ({settings.retention_max_events:,}).",
    }


def _retention_settings(fields: Mapping[str, str], settings: Settings) -> dict[str, int | None]:
    """The project's retention settings from the form (empty: ``None``, the server's); every refused field at once.

    Digits only (no sign, separators or exponent): what is stored is exactly what was typed. ``1,000`` is refused
    rather than read as 1 or 1000.
    """
    values: dict[str, int | None] = {}
    errors: dict[str, str] = {}
    for name, (low, high) in accounts.RETENTION_BOUNDS.items():
        text = clean(fields.get(name))
        if not text:
            values[name] = None
        elif text.isascii() and text.isdigit() and len(text) <= 10 and low <= int(text) <= high:
            values[name] = int(text)
        else:
            errors[name] = _retention_errors(settings)[name]
    if errors:
        raise _FieldsInvalid(errors)
    return values


def _retention(connection: Connection, settings: Settings, project: ProjectRef) -> dict[str, Any]:
    """The project's own retention settings, the server's, the limits in force and what is stored now."""
    row = connection.execute(
        select(projects.c.retention_days, projects.c.max_events).where(projects.c.id == project.id)
    ).one()
    count, size = stored_totals(connection, [project.id])[project.id]
    limits = Limits(settings.retention_days, settings.retention_max_events).of(row.retention_days, row.max_events)
    return {
        "retention_days": row.retention_days,
        "max_events": row.max_events,
        "server_days": settings.retention_days,
        "server_max_events": settings.retention_max_events,
        # As the retention pass reads them (retention.Retention.units) and GET /api/v1/projects shows them.
        "days": limits.days,
        "events": limits.max_events,
        "stored_events": count,
        "stored_bytes": size,
        "disk_limited": settings.max_disk_mb > 0,
    }


def _grouping(connection: Connection, project: ProjectRef) -> dict[str, Any]:
    """The project's grouping version, the one it is moving from and until when, and its rules."""
    row = connection.execute(
        select(
            projects.c.grouping_version,
            projects.c.grouping_previous,
            projects.c.grouping_transition_until,
            projects.c.stacktrace_rules,
            projects.c.fingerprint_rules,
        ).where(projects.c.id == project.id)
    ).one()
    return {
        "version": row.grouping_version,
        "versions": sorted(STRATEGIES),
        "current": CURRENT,
        "previous": moving_from(row.grouping_previous, row.grouping_transition_until, now()),
        "until": row.grouping_transition_until,
        "stacktrace_rules": row.stacktrace_rules or "",
        "fingerprint_rules": row.fingerprint_rules or "",
    }


def _grouping_settings(fields: Mapping[str, str]) -> dict[str, Any]:
    """The grouping form's settings; each kind of rules that does not parse is refused next to its field."""
    version = clean(fields.get("grouping_version"))
    if not (version.isascii() and version.isdigit() and int(version) in STRATEGIES):
        raise Invalid(f"Choose a grouping version: {', '.join(str(v) for v in sorted(STRATEGIES))}.")
    stack, fingerprint = clean(fields.get("stacktrace_rules")), clean(fields.get("fingerprint_rules"))
    texts = {"stacktrace_rules": stack, "fingerprint_rules": fingerprint}
    errors: dict[str, str] = {}
    for name, (stack_text, fingerprint_text) in (
        ("stacktrace_rules", (stack, "")),
        ("fingerprint_rules", ("", fingerprint)),
    ):
        try:
            ProjectRules.parse(stack_text, fingerprint_text)  # one kind at a time: each error beside its field
        except RuleError as error:
            errors[name] = f"{error.kind.capitalize()} rules, line {error.line}: {error.message}"
    if errors:
        raise _FieldsInvalid(errors)
    return {"grouping_version": int(version), **texts}


def _number_or_text(value: str | None) -> int | str | None:
    """A whole number as ``int``; anything else as typed, for ``alerts.manage`` to refuse with its own message.

    A number too large for the database's integer columns stays text too: refused, rather than failing to store.
    """
    text = clean(value)
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        return text
    return number if abs(number) <= MAX_ID else text


def _settings_url(slug: str) -> str:
    return f"/projects/{quote(slug, safe='')}/settings"


def _forbidden(context: Web) -> Response:
    return context.error(403, "Not allowed", "Only administrators can change a project's settings.")


def _csrf(request: Request) -> str:
    session = web(request).cookies.read(request)
    return session.csrf if session else ""


# ---- reading -----------------------------------------------------------------------------------------------


def _keys(connection: Connection, context: Web, project: ProjectRef) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(project_keys).where(project_keys.c.project_id == project.id).order_by(project_keys.c.id)
    )
    return [
        {
            "id": row.id,
            "label": row.label,
            "dsn": accounts.dsn(context.settings.base_url, row.public_key, project.id),
            "active": bool(row.active),
            "rate_limit": row.rate_limit_per_minute,
            "attachment_rate_limit": row.attachment_rate_limit_per_minute,
            "attachment_bytes_limit": row.attachment_bytes_per_minute,
            "created_at": row.created_at,
        }
        for row in rows
    ]


def _members(connection: Connection, project: ProjectRef) -> list[str]:
    query = (
        select(users.c.email)
        .join(project_members, project_members.c.user_id == users.c.id)
        .where(project_members.c.project_id == project.id)
        .order_by(users.c.email)
    )
    return list(connection.execute(query).scalars())


def _rules(connection: Connection, project: ProjectRef, names: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {**rule, "channel_names": [names.get(c, f"#{c}") for c in rule["channels"]]}
        for rule in manage.list_rules(connection, project.id)
    ]


def _settings_page(
    request: Request,
    user: User,
    project: ProjectRef,
    *,
    error: str = "",
    notice: str = "",
    status_code: int = 200,
    typed: Mapping[str, Any] | None = None,
    field_errors: Mapping[str, str] | None = None,
) -> Response:
    """The settings page; after a refused form, ``typed`` is what it sent, so the form comes back as it was, and
    ``field_errors`` the messages to show next to its fields."""
    context = web(request)
    typed = typed or {}
    with context.engine.connect() as connection:
        channels = manage.list_channels(connection, project.id, context.settings)
        names = {channel["id"]: channel["name"] for channel in channels}
        values = {
            "user": user,
            "csrf_token": _csrf(request),
            "project": project,
            "section": "settings",
            "admin": user.is_admin,
            "error": error,
            "notice": notice,
            # What a refused form sent, by form (the fields of one form may share names with another's).
            "typed": {
                name: _Typed(typed.get(name) or {}) for name in ("keys", "members", "retention", "grouping", "channels")
            },
            "field_errors": _Typed(field_errors or {}),
            "retention_refused": "retention" in typed,
            "grouping_refused": "grouping" in typed,
            "typed_rule": {**_blank_rule(), **typed["rules"]} if "rules" in typed else None,
            "keys": _keys(connection, context, project),
            "server_rate_limit": context.settings.rate_limit_per_minute,
            "server_attachment_rate_limit": context.settings.attachment_rate_limit_per_minute,
            "server_attachment_bytes_limit": context.settings.attachment_bytes_per_minute,
            "max_rate_limit": MAX_RATE_LIMIT,
            "members": _members(connection, project),
            "retention": _retention(connection, context.settings, project),
            "grouping": _grouping(connection, project),
            "channels": channels,
            "rules": _rules(connection, project, names),
            "kinds": list(CHANNEL_KINDS),
            "triggers": ALERT_TRIGGERS,
            "impact_kinds": list(IMPACT_KINDS),
            "levels": LEVELS,
            "default_cooldown": DEFAULT_COOLDOWN_MINUTES,
            "default_hourly_cap": DEFAULT_HOURLY_CAP,
        }
    return context.page("settings.html", values, status_code=status_code)


# ---- changing ----------------------------------------------------------------------------------------------


def _administered(request: Request, connection: Connection, slug: str, back: str) -> tuple[User, ProjectRef] | Response:
    """The administrator and the project a settings change is for; or the answer instead: the login page (then
    ``back``), the same 404 for a missing and a hidden project, or 403 for a user who is not an administrator."""
    user = current_user(request, connection)
    if user is None:
        return RedirectResponse(f"/login?next={quote(back, safe='/')}", status_code=303)
    project = visible_project(connection, user, slug)
    if project is None:
        return _not_found(web(request))
    if not user.is_admin:
        return _forbidden(web(request))
    return user, project


def _no_item(context: Web) -> Response:
    return context.error(404, "Not found", "There is no such item in this project.")


Change = Callable[[Connection, ProjectRef], None]


def _change(request: Request, slug: str, apply: Change) -> Response:
    """Run ``apply`` for an administrator in one write transaction, then back to the settings page (303).

    Logged out: to the login page. A project the user may not see: 404. Not an administrator: 403. ``Invalid`` or
    the alert and account modules' errors: the page again with the message (400); the transaction is rolled back.
    """
    context = web(request)
    user: User | None = None
    project: ProjectRef | None = None
    try:
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = _administered(request, connection, slug, _settings_url(slug))
            if isinstance(found, Response):
                return found
            user, project = found
            apply(connection, project)
    except _Missing:
        return _no_item(context)
    except (Invalid, manage.AlertError, accounts.AccountError) as error:
        if user is None or project is None:  # raised by ``apply`` only, after both were found
            raise
        typed = {_posted_form(request): _rule_spec(request) if request.url.path.endswith("/rules") else form(request)}
        fields = error.fields if isinstance(error, _FieldsInvalid) else {}
        return _settings_page(
            request, user, project, error=str(error), status_code=400, typed=typed, field_errors=fields
        )
    return RedirectResponse(_settings_url(project.slug), status_code=303)


class _Typed(dict[str, Any]):
    """A refused form's fields for the template: a field it did not send reads as empty."""

    def __missing__(self, key: str) -> str:
        return ""


def _blank_rule() -> dict[str, Any]:
    """Every field the rule form shows, empty: what a refused form did not send."""
    empty = dict.fromkeys(("name", "trigger", "level", "threshold", "window_minutes", "impact_kind"))
    return {**empty, "filters": {}, "channels": [], "cooldown_minutes": DEFAULT_COOLDOWN_MINUTES, "enabled": True}


def _posted_form(request: Request) -> str:
    """Which form of the page a refused request came from: keys, members, retention, grouping, channels or rules."""
    return request.url.path.rstrip("/").rsplit("/", 1)[-1]


def _key_row(connection: Connection, project: ProjectRef, key_id: str) -> int:
    found = connection.execute(
        select(project_keys.c.id).where(project_keys.c.id == _id(key_id), project_keys.c.project_id == project.id)
    ).scalar()
    if found is None:
        raise _Missing
    return int(found)


def _channel_config(fields: dict[str, str]) -> dict[str, Any]:
    """The configuration a channel of the form's kind needs, from the form's fields (``manage`` validates it)."""
    kind = clean(fields.get("kind"))
    if kind == "email":
        to = [part.strip() for part in clean(fields.get("to")).replace("\n", ",").split(",") if part.strip()]
        config: dict[str, Any] = {"to": to}
        if fields.get("admins"):
            config["admins"] = True
        return config
    if kind == "webhook":
        secret = clean(fields.get("secret"))
        return {"url": clean(fields.get("url")), **({"secret": secret} if secret else {})}
    return {"url": clean(fields.get("url"))}


def _rule_spec(request: Request) -> dict[str, Any]:
    """The rule of the form, as the REST API's body would carry it; ``manage.create_rule`` validates it."""
    fields = form(request)
    trigger = clean(fields.get("trigger"))
    spec: dict[str, Any] = {"name": clean(fields.get("name")), "trigger": trigger}
    if trigger == "level":
        spec["level"] = clean(fields.get("level")) or None
    if trigger in ("event_frequency", "impact"):
        spec["threshold"] = _number_or_text(fields.get("threshold"))
        spec["window_minutes"] = _number_or_text(fields.get("window_minutes"))
    if trigger == "impact":
        spec["impact_kind"] = clean(fields.get("impact_kind"))
    filters = {key: clean(fields.get(f"filter_{key}")) for key in FORM_FILTERS}
    spec["filters"] = {key: value for key, value in filters.items() if value}
    cooldown = _number_or_text(fields.get("cooldown_minutes"))
    if cooldown is not None:
        spec["cooldown_minutes"] = cooldown
    spec["channels"] = [_number_or_text(value) for value in form_values(request, "channel")]
    spec["enabled"] = bool(fields.get("enabled"))
    return spec


def _find_rule(connection: Connection, project: ProjectRef, rule_id: str) -> dict[str, Any] | None:
    try:
        return manage.get_rule(connection, project.id, _id(rule_id))
    except _Missing:
        return None


def _rule_page(
    request: Request,
    connection: Connection,
    user: User,
    project: ProjectRef,
    rule: dict[str, Any],
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    values = {
        "user": user,
        "csrf_token": _csrf(request),
        "project": project,
        "rule": rule,
        "kept_filters": {key: value for key, value in rule["filters"].items() if key not in FORM_FILTERS},
        "channels": manage.list_channels(connection, project.id, web(request).settings),
        "triggers": ALERT_TRIGGERS,
        "impact_kinds": list(IMPACT_KINDS),
        "levels": LEVELS,
        "default_cooldown": DEFAULT_COOLDOWN_MINUTES,
        "error": error,
    }
    return web(request).page("rule.html", values, status_code=status_code)


def build_settings_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/projects/{slug}/settings")
    def settings_page(request: Request, slug: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = project_for_page(request, connection, slug)
        if isinstance(found, Response):
            return found
        return _settings_page(request, *found)

    @router.post("/projects/{slug}/settings/keys")
    def create_key(request: Request, slug: str) -> Response:
        fields = form(request)

        def apply(connection: Connection, project: ProjectRef) -> None:
            label, limit = _label(fields.get("label"), "key's label"), _rate_limit(fields.get("rate_limit"))
            attachment_limits = _attachment_limits(fields)
            public_key = accounts.create_key(connection, project.id, label)
            connection.execute(
                update(project_keys)
                .where(project_keys.c.public_key == public_key)
                .values(rate_limit_per_minute=limit, **attachment_limits)
            )

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/keys/{key_id}/revoke")
    def revoke_key(request: Request, slug: str, key_id: str) -> Response:
        def apply(connection: Connection, project: ProjectRef) -> None:
            found = _key_row(connection, project, key_id)
            connection.execute(update(project_keys).where(project_keys.c.id == found).values(active=False))

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/keys/{key_id}/rate-limit")
    def key_rate_limit(request: Request, slug: str, key_id: str) -> Response:
        fields = form(request)

        def apply(connection: Connection, project: ProjectRef) -> None:
            found, limit = _key_row(connection, project, key_id), _rate_limit(fields.get("rate_limit"))
            connection.execute(
                update(project_keys).where(project_keys.c.id == found).values(rate_limit_per_minute=limit)
            )

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/keys/{key_id}/attachment-limits")
    def key_attachment_limits(request: Request, slug: str, key_id: str) -> Response:
        fields = form(request)

        def apply(connection: Connection, project: ProjectRef) -> None:
            found, limits = _key_row(connection, project, key_id), _attachment_limits(fields)
            connection.execute(update(project_keys).where(project_keys.c.id == found).values(**limits))

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/members")
    def add_member(request: Request, slug: str) -> Response:
        email = clean(form(request).get("email")).lower()

        def apply(connection: Connection, project: ProjectRef) -> None:
            if not email:
                raise Invalid("Enter the email address of the user to add.")
            if connection.execute(select(users.c.id).where(users.c.email == email)).first() is None:
                raise Invalid(f"There is no user with the email address {email}. Create the user first.")
            accounts.add_member(connection, project.slug, email)

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/members/remove")
    def remove_member(request: Request, slug: str) -> Response:
        email = clean(form(request).get("email")).lower()

        def apply(connection: Connection, project: ProjectRef) -> None:
            if connection.execute(select(users.c.id).where(users.c.email == email)).first() is None:
                raise Invalid(f"There is no user with the email address {email}.")
            accounts.remove_member(connection, project.slug, email)

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/retention")
    def change_retention(request: Request, slug: str) -> Response:
        """Both retention settings at once (empty: the server's); the worker's next pass applies them."""
        fields = form(request)
        settings = web(request).settings

        def apply(connection: Connection, project: ProjectRef) -> None:
            accounts.update_project(connection, project.slug, **_retention_settings(fields, settings))

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/grouping")
    def change_grouping(request: Request, slug: str) -> Response:
        """The grouping version and both kinds of rules at once; events digested from then on are grouped so."""
        fields = form(request)

        def apply(connection: Connection, project: ProjectRef) -> None:
            accounts.update_grouping(connection, project.slug, **_grouping_settings(fields))

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/channels")
    def create_channel(request: Request, slug: str) -> Response:
        fields = form(request)
        settings = web(request).settings

        def apply(connection: Connection, project: ProjectRef) -> None:
            cap = _number_or_text(fields.get("hourly_cap"))
            if isinstance(cap, str):
                raise Invalid("The hourly cap must be a whole number of notifications.")
            manage.create_channel(
                connection,
                project.id,
                name=_label(fields.get("name"), "channel's name"),
                kind=clean(fields.get("kind")),
                config=_channel_config(fields),
                settings=settings,
                **({} if cap is None else {"hourly_cap": cap}),
            )

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/channels/{channel_id}/delete")
    def delete_channel(request: Request, slug: str, channel_id: str) -> Response:
        def apply(connection: Connection, project: ProjectRef) -> None:
            if not manage.delete_channel(connection, project.id, _id(channel_id)):
                raise _Missing

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/channels/{channel_id}/test")
    def test_channel(request: Request, slug: str, channel_id: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = _administered(request, connection, slug, _settings_url(slug))
            if isinstance(found, Response):
                return found
            user, project = found
            try:
                wanted = _id(channel_id)
            except _Missing:
                wanted = 0
            row = connection.execute(
                select(alert_channels).where(alert_channels.c.id == wanted, alert_channels.c.project_id == project.id)
            ).first()
            if row is None:
                return _no_item(context)
            config = channel_config(connection, row.config)
        base = context.settings.base_url or str(request.base_url).rstrip("/")
        notification = channel_test_notification(project.slug, f"{base}/projects/{project.slug}")
        outcome = send_now(row.kind, config, notification, context.settings)  # outside any transaction
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            record_health(connection, row.id, outcome, now())
        if outcome.delivered:
            return _settings_page(request, user, project, notice=f"Test notification sent to {row.name}.")
        # 200 either way: the page worked; a 502 could be swapped for a proxy's own error page.
        return _settings_page(
            request, user, project, error=f"The test notification to {row.name} failed: {outcome.error}"
        )

    @router.post("/projects/{slug}/settings/rules")
    def create_rule(request: Request, slug: str) -> Response:
        spec = _rule_spec(request)

        def apply(connection: Connection, project: ProjectRef) -> None:
            manage.create_rule(connection, project.id, spec)

        return _change(request, slug, apply)

    @router.get("/projects/{slug}/settings/rules/{rule_id}")
    def rule_page(request: Request, slug: str, rule_id: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = _administered(request, connection, slug, request.url.path)
            if isinstance(found, Response):
                return found
            user, project = found
            rule = _find_rule(connection, project, rule_id)
            if rule is None:
                return _no_item(context)
            return _rule_page(request, connection, user, project, rule)

    @router.post("/projects/{slug}/settings/rules/{rule_id}")
    def change_rule(request: Request, slug: str, rule_id: str) -> Response:
        """The whole rule from the form; filters the form does not show (release, workflow, tags) are kept."""
        context = web(request)
        spec = _rule_spec(request)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = _administered(request, connection, slug, f"{_settings_url(slug)}/rules/{quote(rule_id, safe='')}")
            if isinstance(found, Response):
                return found
            user, project = found
            current = _find_rule(connection, project, rule_id)
            if current is None:
                return _no_item(context)
            kept = {key: value for key, value in current["filters"].items() if key not in FORM_FILTERS}
            spec["filters"] = {**kept, **spec["filters"]}
            try:  # ``update_rule`` checks everything before it writes: a refused rule changed nothing
                manage.update_rule(connection, project.id, current["id"], spec)
            except manage.AlertError as error:
                typed = {**current, **spec}  # the form again as it was sent, with the reason
                return _rule_page(request, connection, user, project, typed, error=str(error), status_code=400)
        return RedirectResponse(f"{_settings_url(project.slug)}#rules", status_code=303)

    @router.post("/projects/{slug}/settings/rules/{rule_id}/enabled")
    def enable_rule(request: Request, slug: str, rule_id: str) -> Response:
        enabled = form(request).get("enabled") == "1"

        def apply(connection: Connection, project: ProjectRef) -> None:
            if not manage.update_rule(connection, project.id, _id(rule_id), {"enabled": enabled}):
                raise _Missing

        return _change(request, slug, apply)

    @router.post("/projects/{slug}/settings/rules/{rule_id}/delete")
    def delete_rule(request: Request, slug: str, rule_id: str) -> Response:
        def apply(connection: Connection, project: ProjectRef) -> None:
            if not manage.delete_rule(connection, project.id, _id(rule_id)):
                raise _Missing

        return _change(request, slug, apply)

    return router
