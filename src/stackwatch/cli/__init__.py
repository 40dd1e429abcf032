"""The ``stackwatch`` command.

Administrative commands work on the configured database directly, whether or not a server is running, and
create and migrate the database when it does not exist yet. One module per command group; importing them
registers their commands on :data:`main`.
"""

from stackwatch.cli import accounts, alerts, backup, database, projects, quarantine, serve  # noqa: F401 - registers the commands
from stackwatch.cli.common import main

__all__ = ["main"]
