"""System of record: workspaces, keys, items, jobs, themes (SQLAlchemy; SQLite or PostgreSQL)."""

from feedback_ai.records import link_models, theme_models  # noqa: F401  (register tables)
from feedback_ai.records.repo import SCOPES, Principal, ProcessedItem, Records

__all__ = ["SCOPES", "Principal", "ProcessedItem", "Records"]
