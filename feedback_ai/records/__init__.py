"""System of record: workspaces, API keys, items, jobs (SQLAlchemy; SQLite or PostgreSQL)."""

from feedback_ai.records.repo import SCOPES, Principal, ProcessedItem, Records

__all__ = ["SCOPES", "Principal", "ProcessedItem", "Records"]
