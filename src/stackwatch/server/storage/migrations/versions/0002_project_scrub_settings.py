"""per-project redaction settings: scrub emails and IP addresses

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("scrub_emails", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("scrub_ips", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("scrub_ips")
        batch.drop_column("scrub_emails")
