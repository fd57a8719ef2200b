"""Roadmap items, their links to themes and feedback, and the demand behind them.

`RoadmapService` is built once per process with its stages injected. Roadmap items are embedded
(title + description) and their vectors kept in the store's theme collection (`kind="roadmap"`),
so suggestions and matching are vector searches like any other.

Demand behind an item: the distinct feedback items of its confirmed themes plus the feedback
linked to it directly; accounts counted once, ARR summed once per account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from feedback_ai.config import Settings
from feedback_ai.embed._base import Embedder
from feedback_ai.errors import InvalidInput, NotFound
from feedback_ai.link import schemas as out
from feedback_ai.link.matcher import roadmap_text
from feedback_ai.link.service import MatchService
from feedback_ai.records import Records
from feedback_ai.records.link_models import RoadmapItem
from feedback_ai.records.link_repo import STATUS_EVENT, LinkRecords
from feedback_ai.records.theme_models import LIVE_STATUSES
from feedback_ai.records.theme_repo import ThemeRecords, utc
from feedback_ai.store._base import ThemePoint, VectorStore

MAX_BATCH = 1_000
SUGGEST_LIMIT = 5


class RoadmapService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        store: VectorStore,
        embedder: Embedder,
        match: MatchService | None = None,
    ) -> None:
        self.settings = settings
        self.match = match
        self.db = LinkRecords(records)
        self.themes = ThemeRecords(records)
        self.records = records
        self.store = store
        self.embedder = embedder

    # --- items
    def upsert(self, workspace: str, items: Sequence[out.RoadmapIn]) -> tuple[out.Upserted, list]:
        """Create or update by key (idempotent); returns what changed and the webhook deliveries
        queued for status changes (to dispatch)."""
        if len(items) > MAX_BATCH:
            raise InvalidInput(
                f"{len(items)} items; the maximum is {MAX_BATCH}", {"field": "items"}
            )
        seen = Counter(i.key for i in items)
        twice = sorted(k for k, n in seen.items() if n > 1)
        if twice:
            raise InvalidInput(f"duplicate keys in one request: {twice}", {"keys": twice})
        fields = [_fields(i) for i in items]
        self._embed(workspace, fields)
        before = {d.id for d in self.db.deliveries(workspace, "pending", limit=10_000)}
        created, updated, changed = self.db.upsert_items(workspace, fields, self._event)
        queued = [
            d.id
            for d in self.db.deliveries(workspace, "pending", limit=10_000)
            if d.id not in before
        ]
        return out.Upserted(created=created, updated=updated, status_changed=changed), queued

    def patch(self, workspace: str, key: str, patch: out.RoadmapPatch) -> tuple[RoadmapItem, list]:
        current = self.db.item(workspace, key)
        values = {"key": key, **{k: v for k, v in patch.model_dump(exclude_unset=True).items()}}
        if "url" in values and values["url"] is not None:
            values["url"] = str(values["url"])
        if {"title", "description"} & set(values):
            merged = {"title": current.title, "description": current.description, **values}
            self._embed(workspace, [merged])
        before = {d.id for d in self.db.deliveries(workspace, "pending", limit=10_000)}
        self.db.upsert_items(workspace, [values], self._event)
        queued = [
            d.id
            for d in self.db.deliveries(workspace, "pending", limit=10_000)
            if d.id not in before
        ]
        return self.db.item(workspace, key), queued

    def _embed(self, workspace: str, fields: list[dict[str, Any]]) -> None:
        texts = [roadmap_text(f["title"], f.get("description") or "") for f in fields]
        vectors = self.embedder.embed(texts)
        self.store.upsert_themes(
            [
                ThemePoint(workspace, f["key"], v, f["title"][:256], f.get("status", ""), "roadmap")
                for f, v in zip(fields, vectors, strict=True)
            ]
        )

    def delete(self, workspace: str, key: str) -> None:
        self.db.delete_item(workspace, key)
        self.store.delete_themes(workspace, [key], kind="roadmap")

    def _event(self, item: RoadmapItem, old: str) -> dict[str, Any]:
        demand = self.demand(item.workspace_id, item.key)
        return {
            "type": STATUS_EVENT,
            "workspace": item.workspace_id,
            "key": item.key,
            "title": item.title,
            "from": old,
            "to": item.status,
            "at": datetime.now(UTC).isoformat(),
            "demand": {
                "items": demand.items,
                "accounts": demand.accounts,
                "revenue": demand.revenue,
            },
            "requesters": f"/v1/roadmap/{item.key}/requesters",
        }

    # --- links
    def link_theme(self, workspace: str, key: str, theme_id: str, action: str, actor: str) -> None:
        self.db.item(workspace, key)  # 404 for an unknown key
        theme = self.themes.theme(workspace, theme_id)  # 404, also for another workspace's
        if theme.status not in LIVE_STATUSES:
            raise InvalidInput(f"theme {theme_id} is {theme.status}", {"theme_id": theme_id})
        state = "confirmed" if action == "confirm" else "rejected"
        suggested = {s.theme_id: s.confidence for s in self.suggestions(workspace, key)}
        self.db.set_theme_link(workspace, theme_id, key, state, actor, suggested.get(theme_id))

    def link_feedback(
        self, workspace: str, item_id: str, body: out.FeedbackLinkIn, actor: str
    ) -> tuple[str, str]:
        if (body.roadmap_key is None) == (body.theme_id is None):
            raise InvalidInput("give exactly one of roadmap_key and theme_id", {"field": "body"})
        self.records.get_item(workspace, item_id)  # 404 for unknown feedback
        if body.roadmap_key is not None:
            kind, target = "roadmap", self.db.item(workspace, body.roadmap_key).key
        else:
            kind, target = "theme", self.themes.theme(workspace, str(body.theme_id)).id
        state = "confirmed" if body.action == "confirm" else "rejected"
        self.db.set_feedback_link(workspace, item_id, kind, target, state, actor)
        return kind, target

    def suggestions(self, workspace: str, key: str) -> list[out.ThemeRef]:
        """Themes the item's text matches that nobody confirmed or rejected yet, with the
        matcher's calibrated confidence (at least `link_suggest_min`)."""
        vectors = {p.theme_id: p.vector for p in self.store.list_themes(workspace, "roadmap")}
        if key not in vectors or self.match is None:
            return []
        decided = {link.theme_id for link in self.db.theme_links(workspace, key=key)}
        found = self.match.candidates(
            workspace, "theme", vectors[key], SUGGEST_LIMIT + len(decided)
        )
        return [
            out.ThemeRef(theme_id=c.id, label=c.label, state="suggested", confidence=c.confidence)
            for c in found
            if c.id not in decided and c.confidence >= self.settings.link_suggest_min
        ][:SUGGEST_LIMIT]

    # --- reads
    def get(self, workspace: str, key: str) -> out.RoadmapOut:
        item = self.db.item(workspace, key)
        labels = {
            t.id: t.label
            for t in self.themes.themes(
                workspace, ("active", "emerging", "noise", "merged", "split", "retired")
            )
        }
        links = [
            out.ThemeRef(
                theme_id=link.theme_id,
                label=labels.get(link.theme_id, ""),
                state=link.state,
                confidence=link.confidence,
            )  # type: ignore[arg-type]
            for link in self.db.theme_links(workspace, key=key)
        ]
        return render(item, self.demand(workspace, key), links + self.suggestions(workspace, key))

    def list(self, workspace: str, sort: str, status: str | None) -> out.RoadmapList:
        if sort not in ("demand", "key", "updated"):
            raise InvalidInput("sort must be demand, key or updated", {"field": "sort"})
        items = [i for i in self.db.items(workspace) if status is None or i.status == status]
        backing = self.backings(workspace, [i.key for i in items]) if sort == "demand" else {}
        rendered = [
            render(i, _demand(backing[i.key].values()) if sort == "demand" else None, [])
            for i in items
        ]
        if sort == "demand":
            rendered.sort(
                key=lambda r: (
                    -(r.demand.revenue if r.demand else 0),
                    -(r.demand.items if r.demand else 0),
                    r.key,
                )
            )
        elif sort == "updated":
            rendered.sort(key=lambda r: r.updated_at, reverse=True)
        return out.RoadmapList(sort=sort, total=len(rendered), items=rendered)

    def backing(self, workspace: str, key: str) -> dict[str, dict[str, Any]]:
        """item id -> its fields and how it is linked, for every item behind the roadmap item."""
        return self.backings(workspace, [key])[key]

    def backings(self, workspace: str, keys: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """`backing` of each of `keys`, with the links read once and each confirmed theme's rows
        read once however many items it backs (a roadmap page sorted by demand: a handful of
        queries, not several per item)."""
        one = keys[0] if len(keys) == 1 else None  # a single item: read only its links
        wanted = set(keys)
        themes: dict[str, list[str]] = {key: [] for key in keys}
        for link in self.db.theme_links(workspace, key=one):
            if link.state == "confirmed" and link.roadmap_key in wanted:
                themes[link.roadmap_key].append(link.theme_id)
        direct: dict[str, list[str]] = {key: [] for key in keys}
        for confirmed in self.db.feedback_links(workspace, "roadmap", one):
            if confirmed.target_id in wanted:
                direct[confirmed.target_id].append(confirmed.item_id)
        rejected: dict[str, set[str]] = {key: set() for key in keys}
        for refused in self.db.feedback_links(workspace, "roadmap", one, "rejected"):
            if refused.target_id in wanted:
                rejected[refused.target_id].add(refused.item_id)
        fields = self.themes.item_fields(workspace, {i for ids in direct.values() for i in ids})
        rows_of: dict[str, list[dict[str, Any]]] = {}
        out_: dict[str, dict[str, dict[str, Any]]] = {}
        for key in keys:
            found: dict[str, dict[str, Any]] = {}
            for theme_id in themes[key]:
                if theme_id not in rows_of:
                    rows_of[theme_id] = self.themes.theme_rows(workspace, theme_id)
                for row in rows_of[theme_id]:
                    found.setdefault(row["item_id"], {**row, "via": theme_id})
            for item_id in direct[key]:
                if item_id in fields:
                    found[item_id] = {**fields[item_id], "item_id": item_id, "via": "feedback"}
            out_[key] = {k: v for k, v in found.items() if k not in rejected[key]}
        return out_

    def demand(self, workspace: str, key: str) -> out.Demand:
        return _demand(self.backing(workspace, key).values())

    def requesters(self, workspace: str, key: str) -> out.Requesters:
        item = self.db.item(workspace, key)
        rows = self.backing(workspace, key)
        texts = self.themes.texts(workspace, list(rows))
        per: dict[str, list[dict[str, Any]]] = {}
        for r in rows.values():
            if r.get("account_id"):
                per.setdefault(r["account_id"], []).append(r)
        accounts = [
            out.Requester(
                account_id=a, items=len(rs), revenue=max((r.get("revenue") or 0.0) for r in rs)
            )
            for a, rs in sorted(per.items(), key=lambda kv: -len(kv[1]))
        ]
        feedback = [
            out.RequesterItem(
                id=i,
                text=texts.get(i, ""),
                account_id=r.get("account_id"),
                created_at=utc(r["created_at"]),
                via=r["via"],
            )
            for i, r in sorted(rows.items(), key=lambda kv: kv[1]["created_at"], reverse=True)
        ]
        return out.Requesters(
            key=key,
            status=item.status,
            accounts=accounts,
            unattributed_items=len(rows) - sum(a.items for a in accounts),
            feedback=feedback,
        )


def _fields(item: out.RoadmapIn) -> dict[str, Any]:
    values = item.model_dump()
    values["url"] = str(item.url) if item.url is not None else None
    return values


def weekly(rows: Sequence[dict[str, Any]], weeks: int = 12) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [start - timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]
    counts = np.zeros(weeks, dtype=int)
    for r in rows:
        at = utc(r["created_at"])
        for i in range(weeks - 1, -1, -1):
            if at >= starts[i]:
                if i < weeks - 1 or at < start + timedelta(weeks=1):
                    counts[i] += 1
                break
    return [
        {"week": s.date().isoformat(), "items": int(c)} for s, c in zip(starts, counts, strict=True)
    ]


def render(
    item: RoadmapItem, demand: out.Demand | None, themes: list[out.ThemeRef]
) -> out.RoadmapOut:
    return out.RoadmapOut(
        key=item.key,
        title=item.title,
        description=item.description,
        status=item.status,
        url=item.url,
        tags=item.tags or [],
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
        demand=demand,
        themes=themes,
    )


def require(found: Any, what: str, ident: str) -> Any:
    if found is None:
        raise NotFound(f"{what} {ident} not found", {"id": ident})
    return found


def _demand(rows: Iterable[dict[str, Any]]) -> out.Demand:
    """Items, accounts and revenue at stake (ARR once per account; an item without an account
    counts alone) and the weekly trend of the items behind a roadmap item."""
    rows = list(rows)
    accounts: dict[str, float] = {}
    lone = 0.0
    for r in rows:
        if r.get("account_id"):
            accounts[r["account_id"]] = max(
                accounts.get(r["account_id"], 0.0), r.get("revenue") or 0.0
            )
        else:
            lone += r.get("revenue") or 0.0
    return out.Demand(
        items=len(rows),
        accounts=len(accounts),
        revenue=round(sum(accounts.values()) + lone, 2),
        trend=weekly(rows),
    )
