"""The system of record (SQLAlchemy): workspaces, API keys, feedback items and ingest jobs.

Qdrant holds the vectors; this database holds what was accepted, so nothing accepted is lost when
a worker or the broker dies: an item is written here (status `pending`) before any task is sent,
and a task only re-reads items by id. SQLite in the embedded mode, PostgreSQL when distributed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the key
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    scopes: Mapped[str] = mapped_column(String(64))  # comma-separated: ingest,read,admin
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Item(Base):
    """One feedback item. `text` is the raw text while pending, the redacted text once stored."""

    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    text_original: Mapped[str | None] = mapped_column(Text)  # only with keep_original_text
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    account_id: Mapped[str | None] = mapped_column(String(256))
    segment: Mapped[str | None] = mapped_column(String(128))
    revenue: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[float | None] = mapped_column(Float)
    rating_scale: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|stored|failed
    error: Mapped[str | None] = mapped_column(Text)
    mention_count: Mapped[int] = mapped_column(Integer, default=0)
    pii: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        Index("ix_items_ws_status", "workspace_id", "status"),
        Index("ix_items_ws_created", "workspace_id", "created_at"),
    )


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # ingest | import
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{index, field, reason}]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobItem(Base):
    """An item's fate within one job; counts are derived from these rows, so replays are safe."""

    __tablename__ = "job_items"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|stored|failed
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    __table_args__ = (Index("ix_job_items_item", "item_id"),)
