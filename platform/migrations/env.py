"""Alembic environment: uses the connection handed over by keerpunt.platform.migrate."""

from __future__ import annotations

from alembic import context

from keerpunt.platform.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'keerpunt db upgrade'")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
