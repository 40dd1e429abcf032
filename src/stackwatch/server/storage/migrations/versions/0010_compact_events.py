"""compression_dicts: zstd dictionaries per project; leaner events indexes

Revision ID: 0010
Revises: 0009

Payloads already stored stay as they are: a zstd frame names the dictionary it was compressed with (none, for
every payload written before this revision), so old and new payloads are read alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compression_dicts",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("ratio", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_compression_dicts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compression_dicts")),
    )
    with op.batch_alter_table("compression_dicts") as batch:
        batch.create_index(batch.f("ix_compression_dicts_project_id_id"), ["project_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("compression_dicts")
