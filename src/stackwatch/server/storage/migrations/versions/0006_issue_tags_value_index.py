"""issue_tags: an index on (key, value, issue_id) for the issue list's filters

Revision ID: 0006
Revises: 0005

The issue list filters by environment, release, component and workflow through the tag facets (``EXISTS`` on
``issue_tags``). SQLite probes the primary key issue by issue either way; PostgreSQL, misjudging a common value as
rare, read all of ``issue_tags`` for it (60-130 ms at 1,000,000 tag rows). With this index it reads the issues
that hold the value. Building it takes ~2 s per million tag rows.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issue_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_issue_tags_key_value_issue_id"), ["key", "value", "issue_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("issue_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_tags_key_value_issue_id"))
