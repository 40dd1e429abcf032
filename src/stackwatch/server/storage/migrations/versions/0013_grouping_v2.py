"""Grouping version 2: hashes of issues, project grouping settings and rules

Revision ID: 0013
Revises: 0012

* ``grouping_hashes``: every hash that finds an issue, backfilled with each issue's own (``issues.grouping_hash``,
  made by the version in ``issues.grouping_version``).
* ``projects.grouping_version``: 2 for every project, each moving from version 1 (``grouping_previous``) for
  90 days (``grouping_transition_until``): in that time an event whose version-2 hash finds no issue goes to
  the issue its version-1 hash finds, and that issue gains the version-2 hash, so no existing issue is split.
* ``projects.stacktrace_rules`` / ``fingerprint_rules``: NULL, no rules.

The downgrade drops all of it: an issue keeps only the hash that created it, so events whose version-1 hash is
not an issue's own (those of issues created under version 2) would make new issues under the older code.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TRANSITION = 90 * 86_400.0


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("grouping_version", sa.Integer(), server_default="2", nullable=False))
        batch.add_column(sa.Column("grouping_previous", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("grouping_transition_until", sa.Double(), nullable=True))
        batch.add_column(sa.Column("stacktrace_rules", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fingerprint_rules", sa.Text(), nullable=True))
    op.execute(
        sa.text("UPDATE projects SET grouping_previous = 1, grouping_transition_until = :until").bindparams(
            until=time.time() + _TRANSITION
        )
    )
    op.create_table(
        "grouping_hashes",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_grouping_hashes_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_grouping_hashes_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "hash", name=op.f("pk_grouping_hashes")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_grouping_hashes_issue_id"), "grouping_hashes", ["issue_id"])
    op.execute(
        "INSERT INTO grouping_hashes (project_id, hash, issue_id, version, first_seen) "
        "SELECT project_id, grouping_hash, id, grouping_version, first_seen FROM issues"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_grouping_hashes_issue_id"), table_name="grouping_hashes")
    op.drop_table("grouping_hashes")
    with op.batch_alter_table("projects") as batch:
        for column in (
            "fingerprint_rules",
            "stacktrace_rules",
            "grouping_transition_until",
            "grouping_previous",
            "grouping_version",
        ):
            batch.drop_column(column)
