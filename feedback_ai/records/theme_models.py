"""Tables of the theme layer: the registry (themes, lineage and audit), assignments, the pool.

- `Taxonomy`: one row per workspace; `version` goes up with every change of its themes.
- `Theme`: a theme with a stable id. `status`: active | emerging (proposed from the unassigned
  pool, flagged new) | noise (a person marked it) | merged | split | retired (gone; kept for
  lineage). `merged_into` / `split_from` record lineage.
- `ThemeEvent`: the lineage and audit log: what changed, in which taxonomy version, by whom.
- `ThemeConstraint`: human edits that must survive refits (a merge, a split).
- `ItemTheme`: an item's membership of a theme. Counting is by item: one row per (item, theme)
  however many of the item's mentions are in it. The item's filterable fields are copied in so
  rankings and trends are one indexed scan. `origin`: refit | live | manual (a person moved it:
  refits keep it).
- `PoolMention`: mentions far from every theme: candidates for emerging themes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from feedback_ai.records.models import Base, utcnow

LIVE_STATUSES = ("active", "emerging", "noise")  # themes that own members and a centroid
GONE_STATUSES = ("merged", "split", "retired")


class Taxonomy(Base):
    __tablename__ = "taxonomies"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # last refit's record
    # Mentions live assignment pooled since the last emerging check or refit (the column keeps
    # its first name, from when it held the pool's size at the last check: an old value reads
    # as pending growth once, which only brings the next emerging check forward).
    pool_pending: Mapped[int] = mapped_column("pool_checked", Integer, default=0)
    rows_version: Mapped[int] = mapped_column(Integer, default=0)  # + 1 per ingest-time change
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Theme(Base):
    __tablename__ = "themes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    label: Mapped[str] = mapped_column(String(256), default="")
    label_pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    quotes: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{item_id, text}]
    items: Mapped[int] = mapped_column(Integer, default=0)  # at the last refit or edit
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    is_new: Mapped[bool] = mapped_column(Boolean, default=False)  # emerging, not yet refitted
    origin: Mapped[str] = mapped_column(String(16), default="refit")  # refit|emerging|split
    merged_into: Mapped[str | None] = mapped_column(String(32))
    split_from: Mapped[str | None] = mapped_column(String(32))
    created_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    __table_args__ = (Index("ix_themes_ws_status", "workspace_id", "status"),)


class ThemeEvent(Base):
    __tablename__ = "theme_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    theme_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))  # created|kept|merged|split|retired|emerged|...
    other: Mapped[str | None] = mapped_column(String(32))  # merged into / split from / moved to
    actor: Mapped[str] = mapped_column(String(128))  # "refit", "ingest" or the API key's name
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        Index("ix_theme_events_ws_theme", "workspace_id", "theme_id"),
        Index("ix_theme_events_ws_version", "workspace_id", "version"),
    )


class ThemeConstraint(Base):
    __tablename__ = "theme_constraints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # merge | split
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemTheme(Base):
    __tablename__ = "item_themes"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    theme_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mentions: Mapped[int] = mapped_column(Integer, default=1)
    similarity: Mapped[float] = mapped_column(Float, default=0.0)  # best mention's cosine
    sentiment: Mapped[float | None] = mapped_column(Float)  # mean over its mentions, [-1, 1]
    origin: Mapped[str] = mapped_column(String(8), default="refit")  # refit | live | manual
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_ts: Mapped[float] = mapped_column(Float)  # created_at as epoch seconds (analytics)
    account_id: Mapped[str | None] = mapped_column(String(256))
    revenue: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[float | None] = mapped_column(Float)
    rating_scale: Mapped[str | None] = mapped_column(String(16))
    __table_args__ = (
        Index("ix_item_themes_ws_theme_created", "workspace_id", "theme_id", "created_at"),
    )


class JobRun(Base):
    """State and progress of a background job that is not an ingest (a refit)."""

    __tablename__ = "job_runs"
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="refit")
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|...
    stage: Mapped[str] = mapped_column(String(64), default="")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class PoolMention(Base):
    __tablename__ = "theme_pool"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    point_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), index=True)
    similarity: Mapped[float] = mapped_column(Float, default=0.0)  # to the nearest theme
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
