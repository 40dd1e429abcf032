"""events: partitioned by week of received_at on PostgreSQL

Revision ID: 0011
Revises: 0010

PostgreSQL only (SQLite keeps its plain table): the events table becomes a table partitioned by RANGE
(received_at), one partition per week, with a DEFAULT partition (see ``storage/partitions.py``). PostgreSQL
requires the partition key in every primary key and unique constraint of a partitioned table, so the primary key
becomes (id, received_at) and each unique constraint a plain index of the same columns; the digest keeps each
event stored once with advisory locks on the event ids.

The table is rebuilt under an exclusive lock, in the migration's transaction: partitions for every week that
holds events and for the weeks ahead, the rows copied in (ids kept, the id sequence carried over), then the
primary key, the indexes and the foreign keys built, partition by partition. Columns, indexes and foreign keys
are taken from the table as it is, not written out here, so that the migration carries over whatever the
migrations before it made of the table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stackwatch.server.storage import partitions

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_OLD = "events_unpartitioned"


def _list(names: Sequence[str | None]) -> str:
    assert all(name is not None for name in names), "expression indexes are not carried over"
    return ", ".join(f'"{name}"' for name in names)


def _keys(bind: sa.Connection, table: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The indexes of ``table`` as plain (non-unique) indexes, and its foreign keys as DDL clauses."""
    inspector = sa.inspect(bind)
    indexes: list[tuple[str, list[str]]] = []
    for unique in inspector.get_unique_constraints(table):
        columns = [str(c) for c in unique["column_names"]]
        indexes.append((f"ix_events_{'_'.join(columns)}", columns))  # the naming convention's name for an index
    for index in inspector.get_indexes(table):
        if index.get("duplicates_constraint"):
            continue
        columns = [str(c) for c in index["column_names"]]
        indexes.append((f"ix_events_{'_'.join(columns)}", columns))
    foreign_keys = []
    for fk in inspector.get_foreign_keys(table):
        ondelete = (fk.get("options") or {}).get("ondelete")
        foreign_keys.append(
            f'CONSTRAINT "{fk["name"]}" FOREIGN KEY ({_list(fk["constrained_columns"])})'
            f' REFERENCES "{fk["referred_table"]}" ({_list(fk["referred_columns"])})'
            + (f" ON DELETE {ondelete}" if ondelete else "")
        )
    return indexes, foreign_keys


def _swap(bind: sa.Connection, *, partitioned: bool) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Rename events aside and create the new events beside it with the same columns and the id sequence."""
    op.execute(sa.text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    indexes, foreign_keys = _keys(bind, "events")
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('events', 'id')")).scalar()
    assert sequence, "events.id has no sequence of its own"
    op.execute(sa.text(f'ALTER TABLE events RENAME TO "{_OLD}"'))
    partition_by = " PARTITION BY RANGE (received_at)" if partitioned else ""
    op.execute(sa.text(f'CREATE TABLE events (LIKE "{_OLD}" INCLUDING DEFAULTS){partition_by}'))
    # The sequence belongs to the old table's column and would go with it: hand it to the new one.
    op.execute(sa.text(f"ALTER SEQUENCE {sequence} OWNED BY events.id"))
    return indexes, foreign_keys


def _fill(bind: sa.Connection) -> None:
    columns = ", ".join(
        bind.execute(
            sa.text(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass('events')"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ).scalars()
    )
    op.execute(sa.text(f'INSERT INTO events ({columns}) SELECT {columns} FROM "{_OLD}"'))
    op.execute(sa.text(f'DROP TABLE "{_OLD}"'))


def _keys_back(primary_key: str, indexes: list[tuple[str, list[str]]], foreign_keys: list[str]) -> None:
    op.execute(sa.text(f'ALTER TABLE events ADD CONSTRAINT "pk_events" PRIMARY KEY ({primary_key})'))
    for name, columns in indexes:
        op.execute(sa.text(f'CREATE INDEX "{name}" ON events ({_list(columns)})'))
    for clause in foreign_keys:
        op.execute(sa.text(f"ALTER TABLE events ADD {clause}"))
    op.execute(sa.text("ANALYZE events"))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    indexes, foreign_keys = _swap(bind, partitioned=True)
    partitions.ensure_default(bind)
    # Weeks are counted from any Monday: the partitions' own starts.
    monday = partitions.period_start(0.0)
    starts = set(
        bind.execute(
            sa.text(f'SELECT DISTINCT :monday + floor((received_at - :monday) / :period) * :period FROM "{_OLD}"'),
            {"monday": monday, "period": partitions.PERIOD},
        ).scalars()
    )
    this_week = partitions.period_start(time.time())
    starts |= {this_week + n * partitions.PERIOD for n in range(partitions.AHEAD + 1)}
    for lower in sorted(starts):
        partitions.create_partition(bind, lower, lower + partitions.PERIOD)
    _fill(bind)
    _keys_back('"id", "received_at"', indexes, foreign_keys)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    indexes, foreign_keys = _swap(bind, partitioned=False)
    _fill(bind)  # dropping the partitioned table drops its partitions
    plain = []
    for name, columns in indexes:
        if set(columns) == {"project_id", "event_id"}:  # the uniqueness the partitioned table could not declare
            key = f"uq_events_{'_'.join(columns)}"
            op.execute(sa.text(f'ALTER TABLE events ADD CONSTRAINT "{key}" UNIQUE ({_list(columns)})'))
        else:
            plain.append((name, columns))
    _keys_back('"id"', plain, foreign_keys)
