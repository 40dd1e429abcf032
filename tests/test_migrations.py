"""The Alembic migrations produce exactly the schema in ``storage/schema.py``, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, inspect, select, text

from stackwatch.server.storage import db, partitions
from stackwatch.server.storage.schema import metadata, metadata_for, projects

MIGRATIONS = Path(db.__file__).parent / "migrations"


def differences(engine: Engine, target: MetaData | None = None) -> list[Any]:
    """What differs between the database and ``target`` (by default the schema as this backend holds it).

    The partitions of events (PostgreSQL) are the worker's to make and drop, not the migrations': left out.
    """
    with engine.connect() as connection:
        made = {p.name for p in partitions.partitions(connection)} if partitions.is_partitioned(connection) else set()
        opts = {
            "compare_type": True,
            "compare_server_default": True,
            "include_name": lambda name, kind, _parents: not (kind == "table" and name in made),
        }
        context = MigrationContext.configure(connection, opts=opts)
        return list(compare_metadata(context, target or metadata_for(engine.dialect.name)))


def revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def upgrade(engine: Engine, target: str) -> None:
    """Migrate ``engine``'s database up to revision ``target`` (to plant data an older schema held)."""
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, target)


def test_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_migrations_match_the_schema(engine: Engine) -> None:
    db.migrate(engine)
    assert differences(engine) == []
    assert revision(engine) == head()


def test_the_comparison_would_see_drift(engine: Engine) -> None:
    """Guard against a vacuous comparison: a column or table the migrations lack is reported."""
    db.migrate(engine)
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata_for(engine.dialect.name).sorted_tables:
        table.to_metadata(drifted)
    Table("issues", drifted, Column("severity_score", Integer, nullable=True), extend_existing=True)
    Table("newthing", drifted, Column("id", Integer, primary_key=True), Column("name", String(10)))
    found = differences(engine, drifted)
    kinds = {(entry[0], getattr(entry[-1], "name", None)) for entry in found if isinstance(entry, tuple)}
    assert ("add_column", "severity_score") in kinds
    assert ("add_table", "newthing") in kinds


def test_migrate_twice_is_a_no_op(engine: Engine) -> None:
    db.migrate(engine)
    inspector = inspect(engine)
    before = {name: inspector.get_columns(name) for name in inspector.get_table_names()}
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="kept", name="Kept", collect_ips=True, created_at=1.0))
    db.migrate(engine)
    inspector = inspect(engine)
    after = {name: inspector.get_columns(name) for name in inspector.get_table_names()}
    assert {name: [c["name"] for c in columns] for name, columns in after.items()} == {
        name: [c["name"] for c in columns] for name, columns in before.items()
    }
    assert differences(engine) == []
    assert revision(engine) == head()
    with engine.connect() as connection:
        assert connection.execute(select(projects.c.slug)).scalars().all() == ["kept"]


def test_every_schema_table_exists(engine: Engine) -> None:
    db.migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables


def test_inbox_ids_are_never_reused(database_url: str, engine: Engine) -> None:
    """SQLite: both inbox tables (the migrated one and the inbox file's) use AUTOINCREMENT; PostgreSQL: a sequence."""
    from stackwatch.server.storage.inbox import open_inbox

    db.migrate(engine)
    if not database_url.startswith("sqlite"):
        (column,) = [c for c in inspect(engine).get_columns("inbox") if c["name"] == "id"]
        assert "nextval" in str(column.get("default")) or column.get("identity"), column
        return
    inbox = open_inbox(engine, database_url)
    try:
        inbox_path = db.inbox_path(database_url)
        assert inbox_path is not None and inbox_path.exists()
        inbox_engine = db.connect(f"sqlite:///{inbox_path}")
        try:
            inbox_only = MetaData(naming_convention=metadata.naming_convention)
            metadata.tables["inbox"].to_metadata(inbox_only)
            assert differences(inbox_engine, inbox_only) == []
            for each in (engine, inbox_engine):
                with each.connect() as connection:
                    sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'inbox'")).scalar()
                assert "AUTOINCREMENT" in str(sql).upper()
        finally:
            inbox_engine.dispose()
    finally:
        inbox.close()


def test_project_hourly_is_backfilled_from_issue_hourly(engine: Engine) -> None:
    """0005 fills ``project_hourly`` from the hourly counts already there, under each issue's level."""
    from stackwatch.server.storage.schema import issue_hourly, issues, project_hourly

    upgrade(engine, "0004")
    hour = 1_789_999_200
    with engine.begin() as connection:
        for slug in ("a", "b"):
            connection.execute(insert(projects).values(slug=slug, name=slug, collect_ips=True, created_at=1.0))
        common = {"grouping_version": 1, "type": "E", "first_seen": 1.0, "last_seen": 1.0}
        connection.execute(
            insert(issues),
            [
                {"id": 1, "project_id": 1, "grouping_hash": "h1", "title": "one", "level": "error", **common},
                {"id": 2, "project_id": 1, "grouping_hash": "h2", "title": "two", "level": "error", **common},
                {"id": 3, "project_id": 1, "grouping_hash": "h3", "title": "three", "level": "warning", **common},
                {"id": 4, "project_id": 2, "grouping_hash": "h4", "title": "four", "level": "error", **common},
            ],
        )
        connection.execute(
            insert(issue_hourly),
            [
                {"issue_id": 1, "hour": hour, "count": 3},
                {"issue_id": 2, "hour": hour, "count": 4},
                {"issue_id": 2, "hour": hour + 3600, "count": 1},
                {"issue_id": 3, "hour": hour, "count": 5},
                {"issue_id": 4, "hour": hour, "count": 6},
            ],
        )
    upgrade(engine, "head")
    with engine.connect() as connection:
        rows = connection.execute(select(project_hourly)).all()
    assert {(p, h, level): n for p, h, level, n in rows} == {
        (1, hour, "error"): 7,
        (1, hour + 3600, "error"): 1,
        (1, hour, "warning"): 5,
        (2, hour, "error"): 6,
    }
    assert differences(engine) == []


def test_existing_tokens_become_admin_tokens(engine: Engine) -> None:
    """0007 gives every token made before scopes existed the ``admin`` scope: what it could do until then."""
    from stackwatch.server.storage.schema import api_tokens

    upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO api_tokens (name, token_hash, prefix, created_at) VALUES ('old', :hash, 'swt_old', 1.0)"),
            {"hash": "0" * 64},
        )
    upgrade(engine, "head")
    with engine.connect() as connection:
        assert connection.execute(select(api_tokens.c.name, api_tokens.c.scope)).all() == [("old", "admin")]
    assert differences(engine) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_facet_tables_keep_their_rows_in_the_primary_key_on_sqlite(engine: Engine) -> None:
    """Revision 0012 rebuilt issue_tags and issue_impact WITHOUT ROWID (the comparison above cannot see it)."""
    upgrade(engine, "0011")
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="p", name="P", collect_ips=True, created_at=1.0))
        connection.exec_driver_sql(
            "INSERT INTO issues (project_id, grouping_hash, grouping_version, title, culprit, type, value, level,"
            " status, platform, unhandled, first_seen, last_seen, event_count, user_count, workflow_count,"
            " run_count, tenant_count) VALUES (1, 'h', 1, 't', '', 'E', '', 'error', 'unresolved', '', 0, 1, 1, 1,"
            " 1, 0, 0, 0)"
        )
        connection.exec_driver_sql("INSERT INTO issue_tags VALUES (1, 'level', 'error', 1, 1.0)")
        connection.exec_driver_sql("INSERT INTO issue_impact VALUES (1, 'user', 'u1', 1, 1.0)")
    db.migrate(engine)
    with engine.connect() as connection:
        ddl: dict[str, str] = dict(
            connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
        )
        assert connection.exec_driver_sql("SELECT * FROM issue_tags").all() == [(1, "level", "error", 1, 1.0)]
        assert connection.exec_driver_sql("SELECT * FROM issue_impact").all() == [(1, "user", "u1", 1, 1.0)]
    for table in ("issue_tags", "issue_impact"):
        assert ddl[table].rstrip().endswith("WITHOUT ROWID"), ddl[table]
    assert differences(engine) == []


def test_existing_projects_move_to_grouping_v2_keeping_their_issues_hashes(engine: Engine) -> None:
    """0013 records every issue's own hash in grouping_hashes and starts every project's move from version 1."""
    import time

    from stackwatch.server.storage.schema import grouping_hashes

    upgrade(engine, "0012")
    with engine.begin() as connection:
        for slug in ("a", "b"):
            connection.execute(insert(projects).values(slug=slug, name=slug, collect_ips=True, created_at=1.0))
        connection.execute(
            text(
                "INSERT INTO issues (id, project_id, grouping_hash, grouping_version, title, culprit, type, value,"
                " level, status, platform, unhandled, first_seen, last_seen, event_count, user_count,"
                " workflow_count, run_count, tenant_count) VALUES (:id, :project, :hash, 1, 't', '', 'E', '',"
                " 'error', 'unresolved', 'python', false, :seen, :seen, 1, 0, 0, 0, 0)"
            ),
            [{"id": 7, "project": 1, "hash": "h7", "seen": 5.0}, {"id": 9, "project": 2, "hash": "h9", "seen": 6.0}],
        )
    before = time.time()
    upgrade(engine, "head")
    with engine.connect() as connection:
        hashes = connection.execute(select(grouping_hashes).order_by(grouping_hashes.c.issue_id)).all()
        moving = connection.execute(
            select(projects.c.grouping_version, projects.c.grouping_previous, projects.c.grouping_transition_until)
        ).all()
    assert [tuple(row) for row in hashes] == [(1, "h7", 7, 1, 5.0), (2, "h9", 9, 1, 6.0)]
    for version, previous, until in moving:
        assert (version, previous) == (2, 1)
        assert before + 89 * 86_400 < until < time.time() + 91 * 86_400
    assert differences(engine) == []


def test_team_workflow_tables_come_and_go_keeping_every_issue_and_its_rows(engine: Engine) -> None:
    """0014 adds issues.assignee_id without rebuilding issues (on SQLite a rebuild would cascade to the tables
    that refer to it), and its downgrade takes it away the same way."""
    from alembic import command

    from stackwatch.server.storage.schema import grouping_hashes, issue_tags, issues

    upgrade(engine, "0013")
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="p", name="P", collect_ips=True, created_at=1.0))
        common = {"grouping_version": 2, "type": "E", "first_seen": 1.0, "last_seen": 1.0, "level": "error"}
        connection.execute(insert(issues), [{"id": 1, "project_id": 1, "grouping_hash": "h", "title": "t", **common}])
        connection.execute(insert(issue_tags).values(issue_id=1, key="level", value="error", count=1, last_seen=1.0))
        connection.execute(
            insert(grouping_hashes).values(project_id=1, hash="h", issue_id=1, version=2, first_seen=1.0)
        )
    upgrade(engine, "0014")

    def kept() -> tuple[int, int, int]:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (issues, issue_tags, grouping_hashes)
            )

    assert kept() == (1, 1, 1)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, "0013")
    assert kept() == (1, 1, 1)
    assert "assignee_id" not in {column["name"] for column in inspect(engine).get_columns("issues")}


def test_snooze_columns_come_and_go_keeping_every_issue_and_its_rows(engine: Engine) -> None:
    """0015 adds the snooze columns without rebuilding issues (a rebuild on SQLite would cascade to the tables
    that refer to it): an issue ignored before stays ignored, not snoozed; the downgrade keeps every row too."""
    from alembic import command

    from stackwatch.server.storage.schema import grouping_hashes, issue_activity, issue_tags, issues

    upgrade(engine, "0014")
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="p", name="P", collect_ips=True, created_at=1.0))
        common = {"grouping_version": 2, "type": "E", "first_seen": 1.0, "last_seen": 1.0, "level": "error"}
        connection.execute(
            insert(issues).values(id=1, project_id=1, grouping_hash="h", title="t", status="ignored", **common)
        )
        connection.execute(insert(issue_tags).values(issue_id=1, key="level", value="error", count=1, last_seen=1.0))
        connection.execute(
            insert(grouping_hashes).values(project_id=1, hash="h", issue_id=1, version=2, first_seen=1.0)
        )
        connection.execute(
            insert(issue_activity).values(issue_id=1, kind="comment", actor="a", data="{}", created_at=1.0)
        )
    upgrade(engine, "0015")

    def kept() -> tuple[int, ...]:
        with engine.connect() as connection:
            return tuple(
                connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (issues, issue_tags, grouping_hashes, issue_activity)
            )

    assert kept() == (1, 1, 1, 1)
    with engine.connect() as connection:
        row = connection.execute(select(issues.c.status, issues.c.snooze, issues.c.snooze_threshold)).one()
    assert tuple(row) == ("ignored", None, None)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, "0014")
    assert kept() == (1, 1, 1, 1)
    assert not {"snooze", "snooze_value", "snooze_threshold"} & {
        c["name"] for c in inspect(engine).get_columns("issues")
    }
