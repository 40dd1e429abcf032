"""Retention: per-project limits, stored-event counters, pinned events, alert windows from counters

Revision ID: 0009
Revises: 0008

* ``projects.retention_days`` / ``max_events``: NULL on every existing project, meaning the server-wide settings.
* ``issues.stored_events`` / ``stored_bytes``: backfilled from the events stored.
* ``events.pinned``: each issue's first event is pinned (the first event of earlier regressions is not known any
  more; regressions from now on pin theirs). The index on (issue_id, received_at), which alert windows used, becomes
  (issue_id, pinned, received_at), which retention uses: alert windows count from ``issue_minutes`` now.
* ``issue_impact.count`` / ``last_seen``: the count of events per value is not known for existing rows (1); their
  last receive time is taken as their issue's latest event's, so an impact rule may count an old value as seen in
  its window until the value ages out or is seen again.
* ``issue_minutes``: backfilled from the events of the last day, so event-frequency windows stay exact across the
  upgrade.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_events", sa.Integer(), nullable=True))
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("stored_events", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(
        "UPDATE issues SET stored_events = (SELECT count(*) FROM events WHERE events.issue_id = issues.id), "
        "stored_bytes = (SELECT coalesce(sum(length(payload)), 0) FROM events WHERE events.issue_id = issues.id)"
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.drop_index("ix_events_issue_id_received_at")
        batch.create_index(batch.f("ix_events_issue_id_pinned_received_at"), ["issue_id", "pinned", "received_at"])
    op.execute(
        "UPDATE events SET pinned = true WHERE id IN (SELECT min(id) FROM events GROUP BY issue_id)"
        if op.get_bind().dialect.name == "postgresql"
        else "UPDATE events SET pinned = 1 WHERE id IN (SELECT min(id) FROM events GROUP BY issue_id)"
    )
    with op.batch_alter_table("issue_impact") as batch:
        batch.add_column(sa.Column("count", sa.BigInteger(), server_default="1", nullable=False))
        batch.add_column(sa.Column("last_seen", sa.Double(), server_default="0", nullable=False))
        batch.create_index(batch.f("ix_issue_impact_issue_id_kind_last_seen"), ["issue_id", "kind", "last_seen"])
    op.execute(
        "UPDATE issue_impact SET last_seen = coalesce((SELECT max(received_at) FROM events "
        "WHERE events.issue_id = issue_impact.issue_id), 0)"
    )
    op.create_table(
        "issue_minutes",
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_minutes_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("issue_id", "minute", name=op.f("pk_issue_minutes")),
    )
    op.create_index(op.f("ix_issue_minutes_minute"), "issue_minutes", ["minute"])
    since = time.time() - 86_400
    op.execute(
        sa.text(
            "INSERT INTO issue_minutes (issue_id, minute, count) "
            "SELECT issue_id, CAST(floor(received_at / 60) AS BIGINT), count(*) FROM events "
            "WHERE received_at >= :since GROUP BY issue_id, CAST(floor(received_at / 60) AS BIGINT)"
        ).bindparams(since=since)
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_issue_minutes_minute"), table_name="issue_minutes")
    op.drop_table("issue_minutes")
    with op.batch_alter_table("issue_impact") as batch:
        batch.drop_index(batch.f("ix_issue_impact_issue_id_kind_last_seen"))
        batch.drop_column("last_seen")
        batch.drop_column("count")
    with op.batch_alter_table("events") as batch:
        batch.drop_index(batch.f("ix_events_issue_id_pinned_received_at"))
        batch.create_index(batch.f("ix_events_issue_id_received_at"), ["issue_id", "received_at"])
        batch.drop_column("pinned")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("stored_bytes")
        batch.drop_column("stored_events")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("max_events")
        batch.drop_column("retention_days")
