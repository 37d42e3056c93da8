"""Alembic's environment for the score store. `store.migrate` runs it with the connection in
`config.attributes["connection"]` (inside its transaction, under its lock); without one (the
`alembic` command with an ini file of your own) it connects to `sqlalchemy.url`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from leadml.store import metadata


def _run(connection: sa.Connection) -> None:
    # batch mode: SQLite can only ALTER a table by copying it, and alembic does that for us
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        _run(connection)
