"""The database schema, one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Times are stored as Unix epoch seconds (floats): the same type, comparison and arithmetic on both backends,
and no time-zone conversions on the digest's hot path. Hour buckets are epoch seconds at the top of the hour.
Migrations in ``migrations/versions`` must produce exactly this schema; a test compares the two.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

__all__ = [
    "ALERT_TRIGGERS",
    "IMPACT_FACETS",
    "ISSUE_STATUSES",
    "LEVELS",
    "TOKEN_SCOPES",
    "alert_channels",
    "alert_outbox",
    "alert_rule_channels",
    "alert_rules",
    "alert_throttle",
    "api_tokens",
    "attachments",
    "auth_throttle",
    "client_report_counts",
    "compression_dicts",
    "digest_state",
    "events",
    "grouping_hashes",
    "inbox",
    "issue_activity",
    "issue_comments",
    "issue_hourly",
    "issue_impact",
    "issue_minutes",
    "issue_tags",
    "issues",
    "metadata",
    "metadata_for",
    "project_hourly",
    "project_keys",
    "project_members",
    "projects",
    "quarantine",
    "saved_searches",
    "session_counts",
    "users",
]

LEVELS = ("fatal", "error", "warning", "info", "debug")
ISSUE_STATUSES = ("unresolved", "resolved", "ignored")
TOKEN_SCOPES = ("admin", "read")

# A fixed naming convention keeps constraint names identical on both backends and in migrations.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing) for INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("collect_ips", Boolean, nullable=False, default=True),
    Column("created_at", Double, nullable=False),
    # Redaction of emails and IP addresses is off by default: both are often what one debugs with.
    Column("scrub_emails", Boolean, nullable=False, server_default=false()),
    Column("scrub_ips", Boolean, nullable=False, server_default=false()),
    # Retention (server/retention.py): days an event is kept and events stored at most; NULL means the server-wide
    # STACKWATCH_RETENTION_DAYS and STACKWATCH_RETENTION_MAX_EVENTS.
    Column("retention_days", Integer, nullable=True),
    Column("max_events", Integer, nullable=True),
    # Grouping (docs/grouping.md): the strategy version that hashes the project's events, and while the project
    # moves from one version to another, the version it moves from, whose hash still finds an event's issue until
    # ``grouping_transition_until``. The rules are text as the project's settings hold them (digest/grouping/rules.py).
    Column("grouping_version", Integer, nullable=False, server_default="2"),
    Column("grouping_previous", Integer, nullable=True),
    Column("grouping_transition_until", Double, nullable=True),
    Column("stacktrace_rules", Text, nullable=True),  # NULL: none
    Column("fingerprint_rules", Text, nullable=True),
)

project_keys = Table(
    "project_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("public_key", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default="Default"),
    Column("active", Boolean, nullable=False, default=True),
    # Events per minute for this key; NULL means the server-wide setting.
    Column("rate_limit_per_minute", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
    # Attachments per minute and attachment bytes per minute for this key; NULL means the server-wide setting.
    Column("attachment_rate_limit_per_minute", Integer, nullable=True),
    Column("attachment_bytes_per_minute", BigInteger, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
    # Part of every dashboard session cookie: raising it (password change, "log out everywhere") ends them all.
    Column("session_version", Integer, nullable=False, server_default="0"),
)

# Which projects a user who is not an administrator may see on the dashboard.
project_members = Table(
    "project_members",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# Failed logins and wrong API tokens, counted per key in fixed windows (see storage/throttle.py). ``key`` is a
# SHA-256 of the kind and the values it counts (an address, an email and an address): what was typed as an email
# (sometimes a password) is not kept.
auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("window_start", Double, nullable=False),
    Column("failures", Integer, nullable=False),
    Index(None, "window_start"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    # SHA-256 of the token: tokens are 256 random bits, so a fast hash is enough and lookups stay O(1).
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),  # revoked tokens stay, as a record of what existed
    # "admin": the whole REST API; "read": GET and HEAD only (api/routes.py).
    Column("scope", String(16), nullable=False, server_default="admin"),
)

issues = Table(
    "issues",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("grouping_hash", String(64), nullable=False),
    Column("grouping_version", Integer, nullable=False),
    Column("title", String(500), nullable=False),
    Column("culprit", String(500), nullable=False, default=""),
    Column("type", String(200), nullable=False),
    Column("value", Text, nullable=False, default=""),
    Column("level", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="unresolved"),
    Column("platform", String(64), nullable=False, default=""),
    Column("unhandled", Boolean, nullable=False, default=False),
    Column("first_seen", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    Column("resolved_at", Double, nullable=True),
    Column("regressed_at", Double, nullable=True),
    Column("event_count", BigInteger, nullable=False, default=0),
    Column("first_release", String(250), nullable=True),
    Column("last_release", String(250), nullable=True),
    Column("user_count", Integer, nullable=False, default=0),
    Column("workflow_count", Integer, nullable=False, default=0),
    Column("run_count", Integer, nullable=False, default=0),
    Column("tenant_count", Integer, nullable=False, default=0),
    # Events of the issue still stored and the bytes of their payloads: kept by the digest (+) and the retention
    # pass (-) in their transactions, so a project's stored events are a sum over its issues, not a count of rows.
    Column("stored_events", BigInteger, nullable=False, server_default="0"),
    Column("stored_bytes", BigInteger, nullable=False, server_default="0"),
    # Who is looking into it: a users.id, NULL for nobody. No foreign key: on SQLite adding one to an existing
    # table means rebuilding it, and dropping the old ``issues`` would cascade to every table that refers to it.
    Column("assignee_id", Integer, nullable=True, index=True),
    # Snoozed: ignored until a condition is met (storage/snooze.py). ``snooze`` is the kind (until, events, users,
    # per_hour), ``snooze_value`` what was asked for, ``snooze_threshold`` what the issue's count (or the time,
    # for until) is compared with. All NULL when the issue is not snoozed.
    Column("snooze", String(16), nullable=True),
    Column("snooze_value", Double, nullable=True),
    Column("snooze_threshold", Double, nullable=True),
    UniqueConstraint("project_id", "grouping_hash"),
    Index(None, "project_id", "status", "last_seen"),
    Index(None, "project_id", "last_seen"),
    Index(None, "snooze", "snooze_threshold"),  # the periodic pass: issues whose "until" has passed
)


# Which issue a grouping hash belongs to. An issue has the hash that created it (``issues.grouping_hash``) and
# every other hash that found it: the newer version's hash of its events while its project moves between grouping
# versions, and (when issues are merged) the merged issues' hashes. Merging moves hashes to the target issue,
# unmerging moves one back; each stored event records its own hash in its payload (``grouping.hash``).
grouping_hashes = Table(
    "grouping_hashes",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(64), primary_key=True),
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("first_seen", Double, nullable=False),  # receive time of the first event that brought it
    sqlite_with_rowid=False,  # as issue_tags
)


# What happened to an issue, oldest first: status changes, regressions, assignments, comments, merges. ``kind``
# names it (docs/dashboard.md lists the kinds), ``data`` holds its details as JSON (the new status, the assignee's
# email, the comment's id, the merged issues), ``user_id`` who did it (NULL: Stackwatch itself, or a user since
# deleted; ``actor`` keeps the email or API token name it was done by).
issue_activity = Table(
    "issue_activity",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("actor", String(320), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "issue_id", "id"),
)

# Comments on an issue: Markdown as written (rendered safely when shown).
issue_comments = Table(
    "issue_comments",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("author", String(320), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("edited_at", Double, nullable=True),
    Index(None, "issue_id", "id"),
)

# A user's saved issue searches, per project.
saved_searches = Table(
    "saved_searches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("query", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("user_id", "project_id", "name"),
)


def _events_table(target: MetaData, *, partitioned: bool = False) -> Table:
    """The events table; ``partitioned``: as PostgreSQL holds it (see ``storage/partitions.py``).

    On PostgreSQL the table is partitioned by ``received_at`` (the server's receive time), so that old events go
    by dropping whole partitions instead of deleting rows. PostgreSQL requires every primary key and unique
    constraint of a partitioned table to include the partition key, so there the primary key is
    ``(id, received_at)`` and the uniqueness of ``(event_id, project_id)`` is a plain index; the digest keeps
    every event stored once by serializing on the event ids themselves (``digest/store.py``). SQLite keeps
    the plain table, the unique constraint, and ``id`` as its rowid.
    """
    return Table(
        "events",
        target,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
        Column("event_id", String(32), nullable=False),
        Column("timestamp", Double, nullable=False),
        Column("received_at", Double, nullable=False, primary_key=partitioned),
        Column("level", String(16), nullable=False),
        # No title: the REST API derives an event's from its payload (``digest.summary.stored_title``).
        Column("handled", Boolean, nullable=False, default=True),
        Column("environment", String(64), nullable=True),
        Column("release", String(250), nullable=True),
        Column("component", String(200), nullable=True),
        Column("workflow_id", String(200), nullable=True),
        Column("run_id", String(200), nullable=True),
        Column("step_id", String(200), nullable=True),
        Column("tenant", String(200), nullable=True),
        Column("user_key", String(320), nullable=True),
        # The normalized event as JSON, one zstd frame; its header names the dictionary it needs (compression_dicts).
        Column("payload", LargeBinary, nullable=False),
        # Never thinned out by the count limit: the issue's first event and the first event of each regression.
        Column("pinned", Boolean, nullable=False, server_default=false()),
        # Event id first: the one index serves the digest's duplicate check (``event_id IN (...)`` over every
        # project), the look-ups by event id alone (the API's ``/events/{id}``) and those within a project.
        Index(None, "event_id", "project_id") if partitioned else UniqueConstraint("event_id", "project_id"),
        Index(None, "issue_id", "id"),
        Index(None, "run_id"),
        # Retention: an issue's events that may be thinned out, by age (and all of them by age, ``pinned IN (0, 1)``);
        # covering on SQLite, where the rowid is part of every index.
        Index(None, "issue_id", "pinned", "received_at"),
        postgresql_partition_by="RANGE (received_at)" if partitioned else None,
    )


events = _events_table(metadata)

# zstd dictionaries trained per project from its stored payloads (digest/dictionaries.py). ``id`` is also the
# dictionary's zstd id, written into the header of every payload compressed with it, so a payload says which row
# it needs (0: none). A row is never changed once written; a retrained dictionary is a new row with a higher id.
# ``event_count`` is the project's event count when it was trained, ``ratio`` its compressed/raw size on payloads
# held out of the training: what the digest compares with to decide when to train again.
compression_dicts = Table(
    "compression_dicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("ratio", Double, nullable=False),
    Index(None, "project_id", "id"),
)

issue_hourly = Table(
    "issue_hourly",
    metadata,
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Events per project, hour and the event's own level (the trends page): kept by the digest in the same
# transaction as issue_hourly, so the two always add up to the same totals.
project_hourly = Table(
    "project_hourly",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("level", String(16), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Tag facets kept in issue_impact instead of issue_tags (tag key: impact kind). A workflow run takes a new value
# every few events, and issue_impact holds each run of an issue with its event count and last time anyway, so its
# rows in issue_tags were as many again (half of that table). Nothing filters issues by run through the tags (the
# run page reads the events' run_id index); the digest leaves these keys out of issue_tags and the issue's tag
# facets (``api/queries.tag_facets``) read them from issue_impact.
IMPACT_FACETS = {"run_id": "run"}

issue_tags = Table(
    "issue_tags",
    metadata,
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_seen", Double, nullable=False),
    # The issue list's filters (environment, release, component, workflow): the issues holding one value. Without
    # it PostgreSQL read the whole table for a value it misjudged as rare (60-130 ms at a million tag rows).
    Index(None, "key", "value", "issue_id"),
    # SQLite: the rows live in the primary key's b-tree instead of a rowid table plus an index of the key, which
    # held every key twice (a third of the facets' bytes). PostgreSQL ignores the option.
    sqlite_with_rowid=False,
)

# One row per distinct (issue, kind, value): kind is user, workflow, run or tenant. The issue's *_count
# columns are kept equal to the number of rows of each kind (incremented by the rows each batch inserts,
# decremented by the retention pass when it forgets values not seen within the age limit). ``count`` is the
# events with that value, ``last_seen`` the latest receive time: alert rules count distinct values in a window
# from it, whatever events are still stored.
issue_impact = Table(
    "issue_impact",
    metadata,
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("count", BigInteger, nullable=False, server_default="1"),
    Column("last_seen", Double, nullable=False, server_default="0"),
    Index(None, "issue_id", "kind", "last_seen"),
    sqlite_with_rowid=False,  # as issue_tags
)

# An issue's events per minute of receive time over the last day: what alert rules' event windows count, exact
# whatever events are still stored. The retention pass deletes minutes older than a day.
issue_minutes = Table(
    "issue_minutes",
    metadata,
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("minute", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Index(None, "minute"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=False, index=True),
    Column("filename", String(500), nullable=False),
    Column("content_type", String(200), nullable=True),
    Column("attachment_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
)

session_counts = Table(
    "session_counts",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("release", String(250), primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

client_report_counts = Table(
    "client_report_counts",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("reason", String(64), primary_key=True),
    Column("category", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Progress markers of the digest, e.g. the last inbox id digested when the inbox is a separate SQLite file.
digest_state = Table(
    "digest_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)


# Envelopes the digest could not store even alone (a bug, not bad input: bad input is refused at ingest or
# skipped item by item). Kept whole so that nothing accepted is ever lost, and so they can be digested again.
def _envelope_columns() -> list[Column[Any]]:
    """An accepted envelope as ingest stored it: the inbox's columns, kept whole in quarantine too."""
    return [
        Column("project_id", Integer, nullable=False),
        Column("received_at", Double, nullable=False),
        Column("client_ip", String(64), nullable=True),
        Column("body", LargeBinary, nullable=False),
    ]


quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("inbox_id", BigInteger, nullable=False),
    *_envelope_columns(),
    Column("error", Text, nullable=False),
    Column("quarantined_at", Double, nullable=False),
)

# Accepted, not yet digested envelopes. On PostgreSQL this table lives in the main database and the digest
# deletes the rows it takes in the same transaction as its writes. On SQLite it lives in a file of its own
# (see ``inbox.py``) so that ingest commits never wait behind a digest transaction.
inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True),
    *_envelope_columns(),
    # Ids must never be reused after the digest deletes rows: the SQLite layout's cursor relies on it.
    sqlite_autoincrement=True,
)


# --- alerts -----------------------------------------------------------------------------------------------------

ALERT_TRIGGERS = ("new_issue", "regression", "escalating", "level", "event_frequency", "impact")

# Where notifications go. ``config`` is the channel's JSON configuration; it can hold secrets (webhook secret,
# Slack URL) and is never returned by the API as stored. Health is tracked from delivery attempts.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("config", Text, nullable=False),
    Column("hourly_cap", Integer, nullable=False),
    # Matching events not notified because the hourly cap was reached; reported in the channel's next message.
    Column("held_back", BigInteger, nullable=False, server_default="0"),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_failure_at", Double, nullable=True),
    Column("last_success_at", Double, nullable=True),
    Column("created_at", Double, nullable=False),
)

# When to notify. ``trigger`` is one of ALERT_TRIGGERS; ``threshold``/``window_minutes`` are used by
# event_frequency and impact (more than ``threshold`` in the last ``window_minutes``), ``impact_kind`` by impact
# (users, runs, workflows), ``level`` by the level trigger (an event at or above it). ``filters`` is a JSON object:
# environment, release, component, workflow_id, level (at or above), tags ({key: value}).
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("level", String(16), nullable=True),
    Column("threshold", Integer, nullable=True),
    Column("window_minutes", Integer, nullable=True),
    Column("impact_kind", String(16), nullable=True),
    Column("filters", Text, nullable=False),
    Column("cooldown_minutes", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
)

alert_rule_channels = Table(
    "alert_rule_channels",
    metadata,
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), primary_key=True),
)

# The cooldown of a rule for an issue, and the matching events held back during it.
alert_throttle = Table(
    "alert_throttle",
    metadata,
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("issue_id", BigId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("last_sent_at", Double, nullable=False),
    Column("held_back", BigInteger, nullable=False),
)

# Notifications to deliver, written in the digest transaction that triggered them. ``payload`` is the
# Notification as JSON. ``status``: pending, sent, failed (given up: permanent error or too many attempts).
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="SET NULL"), nullable=True),
    Column("channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("issue_id", BigId, nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("sent_at", Double, nullable=True),
    Index(None, "status", "next_attempt_at"),
)


@cache
def _postgresql_metadata() -> MetaData:
    target = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        if table is events:
            _events_table(target, partitioned=True)
        else:
            table.to_metadata(target)
    return target


def metadata_for(dialect_name: str) -> MetaData:
    """The schema as the migrations make it on one backend: ``metadata`` itself, but for PostgreSQL's events.

    Queries use the tables of ``metadata`` on both backends; they do not depend on the difference, which is in
    the keys and the partitioning of events only (see ``_events_table``).
    """
    return _postgresql_metadata() if dialect_name == "postgresql" else metadata
