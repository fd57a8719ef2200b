"""Tables of the link layer: roadmap items, their links to themes and feedback, webhooks.

- `RoadmapItem`: one per (workspace, key); `key` is the tracker's (a Jira or Linear key).
- `ThemeLink`: a theme <-> roadmap item link a person confirmed or rejected (suggestions are
  computed, not stored: a rejected pair is never suggested again).
- `FeedbackLink`: a person's word that a feedback item is (or is not) about a roadmap item or a
  theme; confirmed links are the exemplars matching learns from.
- `Webhook` / `Delivery`: where events go, and every event sent: written in the transaction of
  the change that caused it, then delivered (signed, retried); its state is visible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from feedback_ai.records.models import Base, utcnow

ROADMAP_STATUSES = ("idea", "planned", "in_progress", "shipped", "declined")


class RoadmapItem(Base):
    __tablename__ = "roadmap_items"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="idea")
    url: Mapped[str | None] = mapped_column(String(2048))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ThemeLink(Base):
    __tablename__ = "theme_links"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    theme_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    roadmap_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # confirmed | rejected
    confidence: Mapped[float | None] = mapped_column(Float)  # the suggestion's, if it was one
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_theme_links_ws_key", "workspace_id", "roadmap_key"),)


class FeedbackLink(Base):
    __tablename__ = "feedback_links"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # roadmap | theme
    target_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # confirmed | rejected
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        Index("ix_feedback_links_target", "workspace_id", "target_kind", "target_id"),
    )


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))  # signing needs it in the clear
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every event
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Delivery(Base):
    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # also the webhook-id header
    workspace_id: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    __table_args__ = (Index("ix_deliveries_ws_state", "workspace_id", "state"),)
