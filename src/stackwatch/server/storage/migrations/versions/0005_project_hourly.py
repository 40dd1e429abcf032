"""project_hourly: events per project, hour and the event's own level (the trends page)

Revision ID: 0005
Revises: 0004

The digest keeps the table from now on, counting each event under its own level. The hours before this
migration are backfilled from ``issue_hourly`` joined to ``issues.level``: those counts have no level of their
own, so an old hour's events are attributed to their issue's level (what the trends page showed until now).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_hourly",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_hourly_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "hour", "level", name=op.f("pk_project_hourly")),
    )
    op.execute(
        "INSERT INTO project_hourly (project_id, hour, level, count) "
        "SELECT issues.project_id, issue_hourly.hour, issues.level, sum(issue_hourly.count) "
        "FROM issue_hourly JOIN issues ON issues.id = issue_hourly.issue_id "
        "GROUP BY issues.project_id, issue_hourly.hour, issues.level"
    )


def downgrade() -> None:
    op.drop_table("project_hourly")
