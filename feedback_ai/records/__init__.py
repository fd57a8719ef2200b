"""System of record: workspaces, keys, items, jobs, themes (SQLAlchemy; SQLite or PostgreSQL)."""

from feedback_ai.records import theme_models  # noqa: F401  (registers the theme tables)
from feedback_ai.records.repo import SCOPES, Principal, ProcessedItem, Records

__all__ = ["SCOPES", "Principal", "ProcessedItem", "Records"]
