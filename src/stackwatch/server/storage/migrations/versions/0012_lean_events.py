"""events: one index for the event ids

Revision ID: 0012
Revises: 0011

* events: UNIQUE(project_id, event_id) and the index on event_id become one UNIQUE(event_id, project_id) (on
  PostgreSQL's partitioned table, where a unique constraint would need the partition key, one plain index of
  the same columns, created on the parent and so on every partition).
* events: no ``title`` column; the REST API derives an event's title from its payload.
* issue_tags, issue_impact: WITHOUT ROWID tables on SQLite (rebuilt), their rows kept in the primary key's
  b-tree instead of a rowid table beside an index of the same key. Nothing changes on PostgreSQL.
* issue_tags: the workflow run's rows (key ``run_id``) deleted; issue_impact holds the same values and counts
  (kind ``run``), and the tag facets read them from there (``schema.IMPACT_FACETS``). The downgrade copies them
  back from issue_impact (``last_seen`` is then the receive time, not the event's own).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stackwatch.server.storage import partitions

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _postgresql_events(*, upgrade: bool) -> None:
    """Indexes of a partitioned table (0011 made it so) are made and dropped on the parent, which PostgreSQL
    carries to every partition, those to come included."""
    assert partitions.is_partitioned(op.get_bind()), "events is partitioned on PostgreSQL from revision 0011"
    if upgrade:
        op.execute(sa.text('CREATE INDEX "ix_events_event_id_project_id" ON events (event_id, project_id)'))
        op.execute(sa.text('DROP INDEX "ix_events_project_id_event_id"'))
        op.execute(sa.text('DROP INDEX "ix_events_event_id"'))
        op.execute(sa.text("ALTER TABLE events DROP COLUMN title"))
    else:
        # The title for every event: what each event's own was is in its payload, not worth a rewrite.
        op.execute(sa.text("ALTER TABLE events ADD COLUMN title VARCHAR(500) NOT NULL DEFAULT ''"))
        op.execute(sa.text("UPDATE events SET title = issues.title FROM issues WHERE issues.id = events.issue_id"))
        op.execute(sa.text("ALTER TABLE events ALTER COLUMN title DROP DEFAULT"))
        op.execute(sa.text('CREATE INDEX "ix_events_project_id_event_id" ON events (project_id, event_id)'))
        op.execute(sa.text('CREATE INDEX "ix_events_event_id" ON events (event_id)'))
        op.execute(sa.text('DROP INDEX "ix_events_event_id_project_id"'))


_CLUSTERED = ("issue_tags", "issue_impact")


def _sqlite_rowid(*, with_rowid: bool) -> None:
    for table in _CLUSTERED:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
            pass


def _run_tags(*, upgrade: bool) -> None:
    if upgrade:
        op.execute(sa.text("DELETE FROM issue_tags WHERE key = 'run_id'"))
    else:
        op.execute(
            sa.text(
                "INSERT INTO issue_tags (issue_id, key, value, count, last_seen)"
                " SELECT issue_id, 'run_id', value, count, last_seen FROM issue_impact"
                " WHERE kind = 'run' AND length(value) <= 200"
            )
        )


def upgrade() -> None:
    _run_tags(upgrade=True)
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_events(upgrade=True)
        return
    _sqlite_rowid(with_rowid=False)
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_project_id_event_id", type_="unique")
        batch.drop_index("ix_events_event_id")
        batch.drop_column("title")
        batch.create_unique_constraint(batch.f("uq_events_event_id_project_id"), ["event_id", "project_id"])


def downgrade() -> None:
    _run_tags(upgrade=False)
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_events(upgrade=False)
        return
    _sqlite_rowid(with_rowid=True)
    op.add_column("events", sa.Column("title", sa.String(500), nullable=False, server_default=""))
    op.execute(sa.text("UPDATE events SET title = (SELECT title FROM issues WHERE issues.id = events.issue_id)"))
    with op.batch_alter_table("events") as batch:
        batch.alter_column("title", server_default=None)
        batch.drop_constraint("uq_events_event_id_project_id", type_="unique")
        batch.create_unique_constraint(batch.f("uq_events_project_id_event_id"), ["project_id", "event_id"])
        batch.create_index(batch.f("ix_events_event_id"), ["event_id"], unique=False)
