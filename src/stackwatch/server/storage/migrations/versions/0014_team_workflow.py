"""Team workflow: issue assignees, activity, comments; saved searches

Revision ID: 0014
Revises: 0013

* ``issues.assignee_id``: NULL on every issue (nobody assigned), indexed for "assigned to me"; a users.id
  without a foreign key (see schema.issues).
* ``issue_activity``: what happened to an issue, by whom and when; empty (what happened before is not known).
* ``issue_comments``: comments on issues, Markdown as written.
* ``saved_searches``: each user's named issue searches per project.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A plain column (schema.issues says why it has no foreign key): ALTER TABLE ADD COLUMN on both backends.
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_issues_assignee_id"), ["assignee_id"])
    op.create_table(
        "issue_activity",
        sa.Column("id", _ID, nullable=False),
        sa.Column("issue_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_activity_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_issue_activity_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_activity")),
    )
    op.create_index(op.f("ix_issue_activity_issue_id_id"), "issue_activity", ["issue_id", "id"])
    op.create_table(
        "issue_comments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("issue_id", _ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("edited_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_comments_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_issue_comments_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_comments")),
    )
    op.create_index(op.f("ix_issue_comments_issue_id_id"), "issue_comments", ["issue_id", "id"])
    op.create_table(
        "saved_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_saved_searches_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_saved_searches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_searches")),
        sa.UniqueConstraint("user_id", "project_id", "name", name=op.f("uq_saved_searches_user_id_project_id_name")),
    )


def downgrade() -> None:
    op.drop_table("saved_searches")
    op.drop_index(op.f("ix_issue_comments_issue_id_id"), table_name="issue_comments")
    op.drop_table("issue_comments")
    op.drop_index(op.f("ix_issue_activity_issue_id_id"), table_name="issue_activity")
    op.drop_table("issue_activity")
    # Not in batch mode: SQLite's batch would rebuild ``issues``, and dropping the old table would cascade.
    op.drop_index(op.f("ix_issues_assignee_id"), table_name="issues")
    op.drop_column("issues", "assignee_id")
