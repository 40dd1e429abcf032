"""project_keys: a key's own attachment quotas (attachments and attachment bytes per minute)

Revision ID: 0008
Revises: 0007

NULL, as on every existing key, means the server-wide ``STACKWATCH_ATTACHMENT_RATE_LIMIT_PER_MINUTE`` and
``STACKWATCH_ATTACHMENT_BYTES_PER_MINUTE``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_keys") as batch:
        batch.add_column(sa.Column("attachment_rate_limit_per_minute", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("attachment_bytes_per_minute", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_keys") as batch:
        batch.drop_column("attachment_bytes_per_minute")
        batch.drop_column("attachment_rate_limit_per_minute")
