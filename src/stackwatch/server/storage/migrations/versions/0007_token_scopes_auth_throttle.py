"""API token scopes; login throttling by counters per key instead of a row per failure

Revision ID: 0007
Revises: 0006

Existing tokens become ``admin`` tokens (what they could do before). The failures in ``login_failures`` are not
carried over: they counted per email, which is what let anyone lock an account's owner out, and they expire within
15 minutes anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), server_default="admin", nullable=False))

    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_throttle")),
    )
    with op.batch_alter_table("auth_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_throttle_window_start"), ["window_start"], unique=False)

    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failures_kind_key_failed_at"))
        batch_op.drop_index(batch_op.f("ix_login_failures_failed_at"))
    op.drop_table("login_failures")


def downgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failures_failed_at"), ["failed_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_login_failures_kind_key_failed_at"), ["kind", "key", "failed_at"], unique=False
        )

    with op.batch_alter_table("auth_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_throttle_window_start"))
    op.drop_table("auth_throttle")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scope")
