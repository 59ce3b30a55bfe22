"""Alembic environment: migrations run on the connection that
:func:`text_recognizer.serving.migrate.upgrade` passes in (``text-recognizer db upgrade``)."""

from __future__ import annotations

from alembic import context

from text_recognizer.serving.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `text-recognizer db upgrade --db URL`, not the alembic command")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
