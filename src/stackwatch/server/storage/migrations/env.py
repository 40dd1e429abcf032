"""Alembic environment: migrations always run on a connection handed over by ``storage.db.migrate``."""

from __future__ import annotations

from alembic import context

from stackwatch.server.storage.schema import metadata_for

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata_for(connection.dialect.name), render_as_batch=True)
context.run_migrations()
