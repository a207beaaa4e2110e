"""Alembic environment: runs on the connection core.storage.db hands over (never reads alembic.ini)."""

from alembic import context

from core.storage.db import include_in_schema_comparison
from core.storage.schema import SQLModel

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_name=include_in_schema_comparison,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTERs
)
with context.begin_transaction():
    context.run_migrations()
