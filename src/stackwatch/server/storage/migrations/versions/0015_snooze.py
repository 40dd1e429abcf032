"""Snooze: issues ignored until a condition is met

Revision ID: 0015
Revises: 0014

* ``issues.snooze``, ``issues.snooze_value``, ``issues.snooze_threshold``: NULL on every issue (none is snoozed;
  an issue ignored before stays ignored forever, as it was), indexed on (snooze, snooze_threshold) for the
  periodic pass that wakes issues whose "until" has passed (storage/snooze.py).

Plain ALTER TABLE ADD COLUMN and CREATE INDEX on both backends, never batch mode: on SQLite a batch would
rebuild ``issues``, and dropping the old table would cascade to every table that refers to it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("snooze", sa.String(length=16)),
    ("snooze_value", sa.Double()),
    ("snooze_threshold", sa.Double()),
)
_INDEX = "ix_issues_snooze_snooze_threshold"


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("issues", sa.Column(name, type_, nullable=True))
    op.create_index(_INDEX, "issues", ["snooze", "snooze_threshold"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="issues")
    for name, _ in reversed(_COLUMNS):
        op.drop_column("issues", name)
