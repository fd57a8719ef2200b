"""SQL of the link layer: roadmap items, confirmed/rejected links, webhooks and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from feedback_ai.errors import NotFound
from feedback_ai.records.link_models import Delivery, FeedbackLink, RoadmapItem, ThemeLink, Webhook
from feedback_ai.records.repo import Records

_ITEM_FIELDS = ("title", "description", "status", "url", "tags")
STATUS_EVENT = "roadmap.status_changed"


class LinkRecords:
    def __init__(self, records: Records) -> None:
        self.session = records.session

    # --- roadmap items
    def upsert_items(
        self,
        workspace: str,
        items: Sequence[dict[str, Any]],
        event: Callable[[RoadmapItem, str], dict[str, Any]],
    ) -> tuple[list[str], list[str], list[str]]:
        """Insert or update by key in one transaction: (created, updated, status changed). A
        status change queues a `roadmap.status_changed` delivery for every subscribed webhook
        in the same transaction (`event(item, old_status)` makes its payload)."""
        created, updated, changed = [], [], []
        now = datetime.now(UTC)
        with self.session() as s, s.begin():
            hooks = self._hooks(s, workspace, STATUS_EVENT)
            for fields in items:
                row = s.get(RoadmapItem, (workspace, fields["key"]))
                if row is None:
                    row = RoadmapItem(workspace_id=workspace, key=fields["key"], tags=[])
                    s.add(row)
                    created.append(row.key)
                    old = None
                else:
                    updated.append(row.key)
                    old = row.status
                for name in _ITEM_FIELDS:
                    if name in fields:
                        setattr(row, name, fields[name])
                if old is not None and row.status != old:
                    row.status_changed_at = now
                    changed.append(row.key)
                    s.flush()
                    for hook in hooks:
                        self._queue(s, workspace, hook, STATUS_EVENT, event(row, old))
        return created, updated, changed

    def item(self, workspace: str, key: str) -> RoadmapItem:
        with self.session() as s:
            row = s.get(RoadmapItem, (workspace, key))
        if row is None:
            raise NotFound(f"roadmap item {key!r} not found", {"key": key})
        return row

    def items(self, workspace: str) -> list[RoadmapItem]:
        with self.session() as s:
            q = select(RoadmapItem).where(RoadmapItem.workspace_id == workspace)
            return list(s.scalars(q.order_by(RoadmapItem.key)))

    def delete_item(self, workspace: str, key: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(RoadmapItem, (workspace, key))
            if row is None:
                raise NotFound(f"roadmap item {key!r} not found", {"key": key})
            s.delete(row)
            s.execute(
                delete(ThemeLink).where(
                    ThemeLink.workspace_id == workspace, ThemeLink.roadmap_key == key
                )
            )
            s.execute(
                delete(FeedbackLink).where(
                    FeedbackLink.workspace_id == workspace,
                    FeedbackLink.target_kind == "roadmap",
                    FeedbackLink.target_id == key,
                )
            )

    # --- links a person confirmed or rejected
    def set_theme_link(
        self,
        workspace: str,
        theme_id: str,
        key: str,
        state: str,
        actor: str,
        confidence: float | None,
    ) -> None:
        with self.session() as s, s.begin():
            row = s.get(ThemeLink, (workspace, theme_id, key))
            if row is None:
                row = ThemeLink(workspace_id=workspace, theme_id=theme_id, roadmap_key=key)
                s.add(row)
            row.state, row.actor, row.confidence = state, actor, confidence
            row.at = datetime.now(UTC)

    def theme_links(
        self, workspace: str, key: str | None = None, theme_id: str | None = None
    ) -> list[ThemeLink]:
        with self.session() as s:
            q = select(ThemeLink).where(ThemeLink.workspace_id == workspace)
            if key is not None:
                q = q.where(ThemeLink.roadmap_key == key)
            if theme_id is not None:
                q = q.where(ThemeLink.theme_id == theme_id)
            return list(s.scalars(q))

    def set_feedback_link(
        self, workspace: str, item_id: str, kind: str, target: str, state: str, actor: str
    ) -> None:
        with self.session() as s, s.begin():
            row = s.get(FeedbackLink, (workspace, item_id, kind, target))
            if row is None:
                row = FeedbackLink(
                    workspace_id=workspace, item_id=item_id, target_kind=kind, target_id=target
                )
                s.add(row)
            row.state, row.actor, row.at = state, actor, datetime.now(UTC)

    def feedback_links(
        self,
        workspace: str,
        kind: str | None = None,
        target: str | None = None,
        state: str | None = "confirmed",
        item_id: str | None = None,
    ) -> list[FeedbackLink]:
        with self.session() as s:
            q = select(FeedbackLink).where(FeedbackLink.workspace_id == workspace)
            for column, value in (
                (FeedbackLink.target_kind, kind),
                (FeedbackLink.target_id, target),
                (FeedbackLink.state, state),
                (FeedbackLink.item_id, item_id),
            ):
                if value is not None:
                    q = q.where(column == value)
            return list(s.scalars(q))

    # --- webhooks and deliveries
    def add_webhook(self, workspace: str, url: str, secret: str, events: list[str]) -> Webhook:
        hook = Webhook(
            id=str(uuid.uuid4()),
            workspace_id=workspace,
            url=url,
            secret=secret,
            events=events,
            active=True,
        )
        with self.session() as s, s.begin():
            s.add(hook)
        return hook

    def webhooks(self, workspace: str) -> list[Webhook]:
        with self.session() as s:
            q = select(Webhook).where(Webhook.workspace_id == workspace, Webhook.active)
            return list(s.scalars(q.order_by(Webhook.created_at)))

    def delete_webhook(self, workspace: str, webhook_id: str) -> None:
        with self.session() as s, s.begin():
            hook = s.get(Webhook, webhook_id)
            if hook is None or hook.workspace_id != workspace or not hook.active:
                raise NotFound(f"webhook {webhook_id} not found", {"id": webhook_id})
            hook.active = False  # kept: its deliveries still point at it

    def webhook(self, webhook_id: str) -> Webhook | None:
        with self.session() as s:
            return s.get(Webhook, webhook_id)

    @staticmethod
    def _hooks(s: Session, workspace: str, event: str) -> list[Webhook]:
        q = select(Webhook).where(Webhook.workspace_id == workspace, Webhook.active)
        return [h for h in s.scalars(q) if not h.events or event in h.events]

    @staticmethod
    def _queue(
        s: Session, workspace: str, hook: Webhook, event: str, payload: dict[str, Any]
    ) -> None:
        s.add(
            Delivery(
                id=str(uuid.uuid4()),
                workspace_id=workspace,
                webhook_id=hook.id,
                event=event,
                payload=payload,
                state="pending",
                attempts=0,
            )
        )

    def delivery(self, delivery_id: str, workspace: str | None = None) -> Delivery:
        with self.session() as s:
            row = s.get(Delivery, delivery_id)
        if row is None or (workspace is not None and row.workspace_id != workspace):
            raise NotFound(f"delivery {delivery_id} not found", {"id": delivery_id})
        return row

    def deliveries(
        self, workspace: str, state: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        with self.session() as s:
            q = select(Delivery).where(Delivery.workspace_id == workspace)
            if state is not None:
                q = q.where(Delivery.state == state)
            return list(s.scalars(q.order_by(Delivery.created_at.desc()).limit(limit)))

    def pending_deliveries(self, older_than_s: float = 0.0) -> list[str]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        with self.session() as s:
            q = select(Delivery.id).where(
                Delivery.state == "pending", Delivery.updated_at <= cutoff
            )
            return list(s.scalars(q))

    def record_attempt(
        self, delivery_id: str, state: str, status: int | None, error: str | None
    ) -> None:
        with self.session() as s, s.begin():
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    state=state,
                    last_status=status,
                    last_error=error,
                    attempts=Delivery.attempts + 1,
                )
            )

    def requeue(self, workspace: str, delivery_id: str) -> None:
        self.delivery(delivery_id, workspace)
        with self.session() as s, s.begin():
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(state="pending"))
