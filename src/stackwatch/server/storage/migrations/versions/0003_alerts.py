"""alerts: channels, rules, throttling and the notification outbox; default alerts for existing projects

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("hourly_cap", sa.Integer(), nullable=False),
        sa.Column("held_back", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_failure_at", sa.Double(), nullable=True),
        sa.Column("last_success_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_alert_channels_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_channels")),
    )
    with op.batch_alter_table("alert_channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_channels_project_id"), ["project_id"], unique=False)

    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("threshold", sa.Integer(), nullable=True),
        sa.Column("window_minutes", sa.Integer(), nullable=True),
        sa.Column("impact_kind", sa.String(length=16), nullable=True),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("cooldown_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_alert_rules_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
    )
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_rules_project_id"), ["project_id"], unique=False)

    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["alert_channels.id"],
            name=op.f("fk_alert_outbox_channel_id_alert_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name=op.f("fk_alert_outbox_rule_id_alert_rules"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_alert_outbox_idempotency_key")),
    )
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_outbox_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alert_outbox_status_next_attempt_at"), ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "alert_rule_channels",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["alert_channels.id"],
            name=op.f("fk_alert_rule_channels_channel_id_alert_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name=op.f("fk_alert_rule_channels_rule_id_alert_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rule_id", "channel_id", name=op.f("pk_alert_rule_channels")),
    )
    op.create_table(
        "alert_throttle",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_sent_at", sa.Double(), nullable=False),
        sa.Column("held_back", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_alert_throttle_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name=op.f("fk_alert_throttle_rule_id_alert_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rule_id", "issue_id", name=op.f("pk_alert_throttle")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_issue_id_received_at"), ["issue_id", "received_at"], unique=False)

    _default_alerts()


def _default_alerts() -> None:
    """Every existing project gets what a new one gets: new issues, regressions and fatal events in production,
    to the administrators by email. Written out here rather than imported from ``alerts/store.py``
    (``create_default_alerts``): a migration must keep doing what it did when the application code changes."""
    connection = op.get_bind()
    now = time.time()
    channels = sa.table(
        "alert_channels",
        sa.column("id", sa.Integer),
        sa.column("project_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
        sa.column("config", sa.Text),
        sa.column("hourly_cap", sa.Integer),
        sa.column("created_at", sa.Double),
    )
    rules = sa.table(
        "alert_rules",
        sa.column("id", sa.Integer),
        sa.column("project_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("trigger", sa.String),
        sa.column("level", sa.String),
        sa.column("filters", sa.Text),
        sa.column("cooldown_minutes", sa.Integer),
        sa.column("enabled", sa.Boolean),
        sa.column("created_at", sa.Double),
    )
    links = sa.table("alert_rule_channels", sa.column("rule_id", sa.Integer), sa.column("channel_id", sa.Integer))
    for (project_id,) in connection.execute(sa.text("SELECT id FROM projects ORDER BY id")).all():
        channel_id = connection.execute(
            channels.insert()
            .values(
                project_id=project_id,
                name="Administrators",
                kind="email",
                config=json.dumps({"to": [], "admins": True}),
                hourly_cap=20,
                created_at=now,
            )
            .returning(channels.c.id)
        ).scalar_one()
        for name, trigger, level, filters in (
            ("New issue", "new_issue", None, {}),
            ("Regression", "regression", None, {}),
            ("Fatal in production", "level", "fatal", {"environment": "production"}),
        ):
            rule_id = connection.execute(
                rules.insert()
                .values(
                    project_id=project_id,
                    name=name,
                    trigger=trigger,
                    level=level,
                    filters=json.dumps(filters),
                    cooldown_minutes=30,
                    enabled=True,
                    created_at=now,
                )
                .returning(rules.c.id)
            ).scalar_one()
            connection.execute(links.insert().values(rule_id=rule_id, channel_id=channel_id))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_issue_id_received_at"))

    op.drop_table("alert_throttle")
    op.drop_table("alert_rule_channels")
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_outbox_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_alert_outbox_channel_id"))

    op.drop_table("alert_outbox")
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_rules_project_id"))

    op.drop_table("alert_rules")
    with op.batch_alter_table("alert_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_channels_project_id"))

    op.drop_table("alert_channels")
