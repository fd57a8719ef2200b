"""Alembic environment: runs on the connection `feedback_ai.records.migrate` passes in."""

from __future__ import annotations

from alembic import context

from feedback_ai.records import link_models, theme_models  # noqa: F401  (register tables)
from feedback_ai.records.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them: batch mode does it for us
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
