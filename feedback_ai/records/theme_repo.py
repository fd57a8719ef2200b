"""SQL of the theme layer: registry state, assignments, the pool, audit, and aggregations.

`ThemeRecords` shares the engine of `Records`. Every query filters on the workspace. Timestamps
are stored in UTC (SQLite keeps them naive; they are read back as UTC).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from feedback_ai.errors import NotFound
from feedback_ai.records.repo import Records
from feedback_ai.records.theme_models import (
    LIVE_STATUSES,
    ItemTheme,
    JobRun,
    PoolMention,
    Taxonomy,
    Theme,
    ThemeConstraint,
    ThemeEvent,
)

_ROW_FIELDS = ("created_at", "account_id", "revenue", "rating", "rating_scale")


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Event:
    theme_id: str | None
    kind: str
    other: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ThemeState:
    """A theme as a refit or an edit leaves it. `label=None` keeps the stored label."""

    theme_id: str
    status: str = "active"
    label: str | None = None
    keywords: list[str] | None = None
    quotes: list[dict[str, Any]] | None = None
    items: int | None = None
    mentions: int | None = None
    origin: str = "refit"
    merged_into: str | None = None
    split_from: str | None = None
    is_new: bool = False


def row_fields_of(items: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """What `ThemeRecords.item_fields` returns, from items already loaded (ORM `Item` rows)."""
    return {i.id: _row_fields({f: getattr(i, f) for f in _ROW_FIELDS}) for i in items}


def _row_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "created_ts": utc(fields["created_at"]).timestamp()}


class ThemeRecords:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.session = records.session

    # --- registry state
    def version(self, workspace: str) -> int:
        with self.session() as s:
            tax = s.get(Taxonomy, workspace)
            return tax.version if tax else 0

    def taxonomy(self, workspace: str) -> Taxonomy:
        with self.session() as s:
            return s.get(Taxonomy, workspace) or Taxonomy(workspace_id=workspace, version=0)

    def taxonomy_version(self, workspace: str) -> int:
        """The version alone: live assignment checks it for every ingest part, and the full row
        carries the last refit's model record (JSON)."""
        with self.session() as s:
            q = select(Taxonomy.version).where(Taxonomy.workspace_id == workspace)
            return int(s.scalar(q) or 0)

    def themes(self, workspace: str, statuses: Sequence[str] = LIVE_STATUSES) -> list[Theme]:
        with self.session() as s:
            q = select(Theme).where(Theme.workspace_id == workspace, Theme.status.in_(statuses))
            return list(s.scalars(q.order_by(Theme.id)))

    def theme(self, workspace: str, theme_id: str) -> Theme:
        with self.session() as s:
            theme = s.get(Theme, theme_id)
        if theme is None or theme.workspace_id != workspace:
            raise NotFound(f"theme {theme_id} not found", {"theme_id": theme_id})
        return theme

    def members(self, workspace: str) -> dict[str, set[str]]:
        """Item ids per theme (every origin)."""
        out: dict[str, set[str]] = {}
        with self.session() as s:
            q = select(ItemTheme.theme_id, ItemTheme.item_id)
            for theme_id, item_id in s.execute(q.where(ItemTheme.workspace_id == workspace)):
                out.setdefault(theme_id, set()).add(item_id)
        return out

    def manual(self, workspace: str) -> dict[str, list[str]]:
        """Items a person placed: item id -> theme ids."""
        out: dict[str, list[str]] = {}
        with self.session() as s:
            q = select(ItemTheme.item_id, ItemTheme.theme_id).where(
                ItemTheme.workspace_id == workspace, ItemTheme.origin == "manual"
            )
            for item_id, theme_id in s.execute(q):
                out.setdefault(item_id, []).append(theme_id)
        return out

    def constraints(self, workspace: str, kind: str) -> list[ThemeConstraint]:
        with self.session() as s:
            q = select(ThemeConstraint).where(
                ThemeConstraint.workspace_id == workspace, ThemeConstraint.kind == kind
            )
            return list(s.scalars(q.order_by(ThemeConstraint.id)))

    def item_fields(self, workspace: str, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """created_at, account_id, revenue, rating, rating_scale of these items."""
        rows = self._items(workspace, item_ids, _ROW_FIELDS)
        return {row[0]: _row_fields(dict(zip(_ROW_FIELDS, row[1:], strict=True))) for row in rows}

    def stored_since(self, workspace: str, since: datetime) -> list[tuple[str, int]]:
        """(item id, mention count) of the workspace's items stored since `since`."""
        from feedback_ai.records.models import Item

        q = select(Item.id, Item.mention_count).where(
            Item.workspace_id == workspace, Item.status == "stored", Item.updated_at >= since
        )
        with self.session() as s:
            return [(str(i), int(n or 0)) for i, n in s.execute(q)]

    def _items(
        self, workspace: str, item_ids: Iterable[str], columns: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """(id, *columns) of the workspace's items among `item_ids`. Looked up by primary key
        alone, the workspace checked here: with `workspace_id = ? AND id IN (...)` SQLite's
        planner (no ANALYZE statistics) walks the workspace's index over all its items, which
        made live assignment cost 80 ms per 64 items at 100k stored."""
        from feedback_ai.records.models import Item

        wanted = list(dict.fromkeys(item_ids))
        cols = [Item.id, Item.workspace_id, *(getattr(Item, c) for c in columns)]
        out: list[tuple[Any, ...]] = []
        with self.session() as s:
            for start in range(0, len(wanted), 20_000):
                q = select(*cols).where(Item.id.in_(wanted[start : start + 20_000]))
                out += [(r[0], *r[2:]) for r in s.execute(q) if r[1] == workspace]
        return out

    # --- writes: one transaction per change, the taxonomy version bumped once
    def commit(
        self,
        workspace: str,
        actor: str,
        states: Sequence[ThemeState] = (),
        events: Sequence[Event] = (),
        *,
        replace_rows: Iterable[Sequence[dict[str, Any]]] | None = None,
        add_rows: Sequence[dict[str, Any]] = (),
        drop_items: Sequence[str] = (),
        drop_themes: Sequence[str] = (),
        remove: Sequence[tuple[str, str]] = (),
        pool: list[dict[str, Any]] | None = None,
        unpool: Sequence[str] = (),
        constraint: tuple[str, dict[str, Any]] | None = None,
        model: dict[str, Any] | None = None,
        orphans: list[str] | None = None,
        merge_rows: tuple[str, str] | None = None,
        held_only: bool = False,
        recount: Sequence[str] = (),
    ) -> int:
        """Apply a change and return the new taxonomy version.

        `replace_rows`: every refit/live row of the workspace is replaced (manual rows stay) by
        these, given in chunks (a refit builds them chunk by chunk: bounded memory);
        `add_rows`: upserted; `drop_items`: those items' non-manual rows removed first;
        `drop_themes`: every row of those themes removed first; `remove`: (item, theme) rows
        removed; `pool`: replaces the pool; `unpool`: point ids leaving it. `orphans`, if
        given, receives the items that lose their last row here: items placed in a dropped
        theme (live assignment, between the caller's reads and this transaction) that
        `add_rows` does not place; the caller assigns them again. `merge_rows` (source, into):
        the source's rows are re-pointed at `into` (an item in both keeps one row) under the
        write lock, so no row written or deleted since the caller's reads (live assignment, a
        deleted item) is lost or brought back; `into` is recounted. `held_only`: `add_rows` are
        for items the dropped themes held when the caller read them; rows of items that hold
        none there now (deleted meanwhile) are skipped. `recount`: themes whose item and mention
        counts are set from their rows as this transaction leaves them (any `states` values for
        them are overwritten), not from the caller's earlier reads."""
        with self.session() as s, s.begin():
            version = self._bump(
                s, workspace, model
            )  # the write lock first: reads below are current
            if held_only and drop_themes:
                where = (ItemTheme.workspace_id == workspace, ItemTheme.theme_id.in_(drop_themes))
                held = set(s.scalars(select(ItemTheme.item_id).where(*where)))
                add_rows = [row for row in add_rows if row["item_id"] in held]
            if merge_rows is not None:
                add_rows = [*add_rows, *_merged_rows(s, workspace, *merge_rows)]
            if orphans is not None and drop_themes:
                orphans.extend(self._orphans(s, workspace, drop_themes, add_rows))
            for state in states:
                self._save_theme(s, workspace, version, state)
            s.add_all(
                ThemeEvent(
                    workspace_id=workspace,
                    version=version,
                    theme_id=e.theme_id,
                    kind=e.kind,
                    other=e.other,
                    actor=actor,
                    detail=e.detail,
                )
                for e in events
            )
            if constraint is not None:
                s.add(
                    ThemeConstraint(
                        workspace_id=workspace, kind=constraint[0], data=constraint[1], actor=actor
                    )
                )
            for theme_id in drop_themes:
                s.execute(
                    delete(ItemTheme).where(
                        ItemTheme.workspace_id == workspace, ItemTheme.theme_id == theme_id
                    )
                )
            for item_id, theme_id in remove:
                s.execute(
                    delete(ItemTheme).where(
                        ItemTheme.workspace_id == workspace,
                        ItemTheme.item_id == item_id,
                        ItemTheme.theme_id == theme_id,
                    )
                )
            self._rows(s, workspace, replace_rows, add_rows, drop_items)
            self._pool(s, workspace, pool, unpool)
            recount = [*recount, *([merge_rows[1]] if merge_rows is not None else [])]
            self._recount(s, workspace, recount)
            return version

    @staticmethod
    def _recount(s: Session, workspace: str, theme_ids: Sequence[str]) -> None:
        """Set these themes' item and mention counts from their rows (flushed first: the
        counts this transaction leaves)."""
        if not theme_ids:
            return
        s.flush()
        q = (
            select(
                ItemTheme.theme_id,
                func.count(func.distinct(ItemTheme.item_id)),
                func.coalesce(func.sum(ItemTheme.mentions), 0),
            )
            .where(ItemTheme.workspace_id == workspace, ItemTheme.theme_id.in_(theme_ids))
            .group_by(ItemTheme.theme_id)
        )
        counts = {theme_id: (int(n), int(m)) for theme_id, n, m in s.execute(q)}
        for theme_id in dict.fromkeys(theme_ids):
            theme = s.get(Theme, theme_id)
            if theme is not None:
                theme.items, theme.mentions = counts.get(theme_id, (0, 0))

    @staticmethod
    def _orphans(
        s: Session, workspace: str, drop_themes: Sequence[str], add: Sequence[dict[str, Any]]
    ) -> list[str]:
        ws = ItemTheme.workspace_id == workspace
        dropped = set(
            s.scalars(select(ItemTheme.item_id).where(ws, ItemTheme.theme_id.in_(drop_themes)))
        )
        dropped -= {r["item_id"] for r in add}
        if not dropped:
            return []
        elsewhere = set(
            s.scalars(
                select(ItemTheme.item_id).where(
                    ws,
                    ItemTheme.item_id.in_(sorted(dropped)),
                    ItemTheme.theme_id.not_in(drop_themes),
                )
            )
        )
        return sorted(dropped - elsewhere)

    @staticmethod
    def _bump(s: Session, workspace: str, model: dict[str, Any] | None) -> int:
        tax = s.get(Taxonomy, workspace)
        if tax is None:
            tax = Taxonomy(workspace_id=workspace, version=0, model={}, pool_pending=0)
            s.add(tax)
        tax.version = (tax.version or 0) + 1
        if model is not None:
            tax.model = model
        return tax.version

    @staticmethod
    def _save_theme(s: Session, workspace: str, version: int, state: ThemeState) -> None:
        theme = s.get(Theme, state.theme_id)
        if theme is None:
            theme = Theme(
                id=state.theme_id,
                workspace_id=workspace,
                created_version=version,
                origin=state.origin,
                label="",
                label_pinned=False,
                keywords=[],
                quotes=[],
                items=0,
                mentions=0,
            )
            s.add(theme)
        theme.status, theme.updated_version, theme.is_new = state.status, version, state.is_new
        if state.label is not None and not theme.label_pinned:
            theme.label = state.label
        for name in ("keywords", "quotes", "items", "mentions", "merged_into", "split_from"):
            value = getattr(state, name)
            if value is not None:
                setattr(theme, name, value)

    @staticmethod
    def _rows(
        s: Session,
        workspace: str,
        replace: Iterable[Sequence[dict[str, Any]]] | None,
        add: Sequence[dict[str, Any]],
        drop_items: Sequence[str],
    ) -> None:
        where = (ItemTheme.workspace_id == workspace, ItemTheme.origin != "manual")
        keys = ["workspace_id", "item_id", "theme_id"]
        if replace is not None:
            s.execute(delete(ItemTheme).where(*where))
            for rows in replace:
                if rows:
                    _upsert(s, ItemTheme.__table__, list(rows), keys)
        for start in range(0, len(drop_items), 5_000):
            chunk = list(drop_items[start : start + 5_000])
            s.execute(delete(ItemTheme).where(*where, ItemTheme.item_id.in_(chunk)))
        if add:
            _upsert(s, ItemTheme.__table__, list(add), keys)

    @staticmethod
    def _pool(
        s: Session, workspace: str, pool: list[dict[str, Any]] | None, unpool: Sequence[str]
    ) -> None:
        if pool is not None:
            s.execute(delete(PoolMention).where(PoolMention.workspace_id == workspace))
        for start in range(0, len(unpool), 5_000):
            chunk = list(unpool[start : start + 5_000])
            s.execute(
                delete(PoolMention).where(
                    PoolMention.workspace_id == workspace, PoolMention.point_id.in_(chunk)
                )
            )
        if pool:
            _upsert(s, PoolMention.__table__, pool, ["workspace_id", "point_id"])

    def live(
        self,
        workspace: str,
        items: Sequence[str],
        rows: Sequence[dict[str, Any]],
        pool: Sequence[dict[str, Any]],
        manual_too: bool = False,
        version: int | None = None,
    ) -> int | None:
        """Ingest-time assignment (no taxonomy change): these items' refit/live rows and pool
        entries are replaced by `rows` and `pool` (`manual_too`: a person's rows too, when the
        items are deleted). Returns the mentions pooled since the last emerging check, these
        included. With `version`: writes nothing and returns None unless the taxonomy is still
        at that version (a refit committed since the caller read its centroids).

        One transaction of prebuilt Core statements (SQL compiled once per process), opened by
        the taxonomy row's update: it takes the write lock, bumps `rows_version`, counts the
        pooled mentions and returns the version the rows are checked against."""
        t = _live_tables()
        try:
            with self.session() as s, s.begin():
                conn = s.connection()
                stamp = conn.execute(t.touch, {"ws": workspace, "pooled": len(pool)}).first()
                if version is not None and (stamp is None or stamp[0] != version):
                    raise _StaleTaxonomy
                for start in range(0, len(items), 5_000):
                    # By item id (an item id is the primary key of `items`: it names one item
                    # of one workspace). For the pool without `workspace_id = ?`: with it,
                    # SQLite walks the primary key's workspace prefix over the whole pool (56k
                    # rows at 1M stored) instead of using the item_id index.
                    chunk = {"ws": workspace, "ids": list(items[start : start + 5_000])}
                    conn.execute(t.drop_all_rows if manual_too else t.drop_rows, chunk)
                    conn.execute(t.unpool, chunk)
                if rows:
                    _upsert(s, ItemTheme.__table__, list(rows), _ROW_KEYS)
                if pool:
                    _upsert(s, PoolMention.__table__, list(pool), _POOL_KEYS)
        except _StaleTaxonomy:
            return None
        return int(stamp[1] or 0) if stamp is not None else len(pool)

    def set_label(self, workspace: str, theme_id: str, label: str, actor: str) -> int:
        with self.session() as s, s.begin():
            theme = s.get(Theme, theme_id)
            if theme is None or theme.workspace_id != workspace:
                raise NotFound(f"theme {theme_id} not found", {"theme_id": theme_id})
            version = self._bump(s, workspace, None)
            old = theme.label
            theme.label, theme.label_pinned, theme.updated_version = label, True, version
            s.add(
                ThemeEvent(
                    workspace_id=workspace,
                    version=version,
                    theme_id=theme_id,
                    kind="renamed",
                    actor=actor,
                    detail={"from": old, "to": label},
                )
            )
            return version

    def workspaces(self) -> list[str]:
        from feedback_ai.records.models import Workspace

        with self.session() as s:
            return list(s.scalars(select(Workspace.id).order_by(Workspace.id)))

    # --- the unassigned pool
    def pool(self, workspace: str, limit: int) -> list[PoolMention]:
        with self.session() as s:
            q = select(PoolMention).where(PoolMention.workspace_id == workspace)
            return list(s.scalars(q.order_by(PoolMention.created_at.desc()).limit(limit)))

    def pool_size(self, workspace: str) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(PoolMention)
            return int(s.scalar(q.where(PoolMention.workspace_id == workspace)) or 0)

    def pool_pending(self, workspace: str) -> int:
        """Mentions pooled by live assignment since the last emerging check or refit."""
        with self.session() as s:
            q = select(Taxonomy.pool_pending).where(Taxonomy.workspace_id == workspace)
            return int(s.scalar(q) or 0)

    def pool_checked(self, workspace: str) -> None:
        """The pool was just looked at (an emerging check, a refit): nothing is pending."""
        with self.session() as s, s.begin():
            tax = s.get(Taxonomy, workspace)
            if tax is None:
                s.add(Taxonomy(workspace_id=workspace, version=0, model={}, pool_pending=0))
            else:
                tax.pool_pending = 0

    # --- reads for the API
    def stamp(self, workspace: str) -> tuple[int, int]:
        """(taxonomy version, rows version): what a cached copy of the rows is checked with."""
        q = select(Taxonomy.version, Taxonomy.rows_version).where(
            Taxonomy.workspace_id == workspace
        )
        with self.session() as s:
            row = s.execute(q).first()
        return (row[0], row[1] or 0) if row else (0, 0)

    def facts(self, workspace: str) -> list[tuple[Any, ...]]:
        """Every (theme, item, created_ts, account, revenue, rating, scale, sentiment) row."""
        it = ItemTheme
        cols = (
            it.theme_id,
            it.item_id,
            it.created_ts,
            it.account_id,
            it.revenue,
            it.rating,
            it.rating_scale,
            it.sentiment,
        )
        with self.session() as s:
            return [tuple(r) for r in s.execute(select(*cols).where(it.workspace_id == workspace))]

    def feedback(
        self, workspace: str, theme_id: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[ItemTheme, str]]]:
        """A page of the theme's items, newest first, with their (redacted) texts."""
        from feedback_ai.records.models import Item

        where = (ItemTheme.workspace_id == workspace, ItemTheme.theme_id == theme_id)
        with self.session() as s:
            total = int(s.scalar(select(func.count()).select_from(ItemTheme).where(*where)) or 0)
            q = (
                select(ItemTheme, Item.text)
                .join(Item, Item.id == ItemTheme.item_id)
                .where(*where)
                .order_by(ItemTheme.created_at.desc(), ItemTheme.item_id)
                .offset(offset)
                .limit(limit)
            )
            return total, [(row[0], row[1]) for row in s.execute(q)]

    def events(self, workspace: str, theme_id: str | None = None, limit: int = 200) -> list[Any]:
        with self.session() as s:
            q = select(ThemeEvent).where(ThemeEvent.workspace_id == workspace)
            if theme_id is not None:
                q = q.where((ThemeEvent.theme_id == theme_id) | (ThemeEvent.other == theme_id))
            return list(s.scalars(q.order_by(ThemeEvent.id.desc()).limit(limit)))

    def theme_rows(self, workspace: str, theme_id: str) -> list[dict[str, Any]]:
        """Every row of one theme, as dicts ready to be written back."""
        with self.session() as s:
            return _theme_rows(s, workspace, theme_id)

    def theme_items(self, workspace: str, theme_id: str) -> list[str]:
        with self.session() as s:
            q = select(ItemTheme.item_id).where(
                ItemTheme.workspace_id == workspace, ItemTheme.theme_id == theme_id
            )
            return list(s.scalars(q))

    def texts(self, workspace: str, item_ids: Sequence[str]) -> dict[str, str]:
        return {str(i): str(t) for i, t in self._items(workspace, item_ids, ("text",))}

    def mention_counts(self, workspace: str, item_ids: Sequence[str]) -> dict[str, int]:
        return {
            str(i): int(n or 0) for i, n in self._items(workspace, item_ids, ("mention_count",))
        }

    def item_theme_ids(self, workspace: str, item_id: str) -> list[str]:
        with self.session() as s:
            q = select(ItemTheme.theme_id).where(
                ItemTheme.workspace_id == workspace, ItemTheme.item_id == item_id
            )
            return list(s.scalars(q))

    # --- job runs (refits)
    def start_run(self, job_id: str, workspace: str, kind: str = "refit") -> None:
        with self.session() as s, s.begin():
            if s.get(JobRun, job_id) is None:
                s.add(
                    JobRun(
                        job_id=job_id,
                        workspace_id=workspace,
                        kind=kind,
                        state="queued",
                        stage="",
                        done=0,
                        total=0,
                        result={},
                    )
                )

    def active_run(self, workspace: str, kind: str, stale_s: float = 3_600) -> JobRun | None:
        """A queued or running job of this kind, unless silent for `stale_s` (a dead worker)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=stale_s)
        with self.session() as s:
            q = select(JobRun).where(
                JobRun.workspace_id == workspace,
                JobRun.kind == kind,
                JobRun.state.in_(("queued", "running")),
                JobRun.updated_at >= cutoff,
            )
            return s.scalars(q.limit(1)).first()

    def update_run(self, job_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.execute(update(JobRun).where(JobRun.job_id == job_id).values(**values))

    def run(self, workspace: str, job_id: str) -> JobRun:
        with self.session() as s:
            run = s.get(JobRun, job_id)
        if run is None or run.workspace_id != workspace:
            raise NotFound(f"job {job_id} not found", {"job_id": job_id})
        return run


_ROW_KEYS = ("workspace_id", "item_id", "theme_id")
_POOL_KEYS = ("workspace_id", "point_id")


class _StaleTaxonomy(Exception):
    """A live write found the taxonomy at another version than its centroids'."""


@dataclass(frozen=True)
class _LiveStatements:
    touch: Any
    drop_rows: Any
    drop_all_rows: Any
    unpool: Any


@functools.cache
def _live_tables() -> _LiveStatements:
    """The live path's statements, built once: SQLAlchemy then reuses their compiled SQL (a
    statement rebuilt per call, with its IN list, spends more in Python than SQLite spends)."""
    tax, rows, pool = (_table(m) for m in (Taxonomy, ItemTheme, PoolMention))
    ws: Any = bindparam("ws")
    ids: Any = bindparam("ids", expanding=True)
    touch = (
        tax.update()
        .where(tax.c.workspace_id == ws)
        .values(
            rows_version=func.coalesce(tax.c.rows_version, 0) + 1,
            pool_checked=func.coalesce(tax.c.pool_checked, 0) + bindparam("pooled"),
        )
        .returning(tax.c.version, tax.c.pool_checked)
    )
    drop_all = rows.delete().where(rows.c.workspace_id == ws, rows.c.item_id.in_(ids))
    return _LiveStatements(
        touch=touch,
        drop_rows=drop_all.where(rows.c.origin != "manual"),
        drop_all_rows=drop_all,
        unpool=pool.delete().where(pool.c.item_id.in_(ids)),
    )


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


@functools.lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    changed = {c: stmt.excluded[c] for c in columns if c not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changed)


def _upsert(s: Session, table: Any, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, executemany in chunks (SQLite and PostgreSQL); one
    statement per (table, columns), built once."""
    assert isinstance(table, Table)
    dialect = s.get_bind().dialect.name
    stmt = _upsert_statement(dialect, table, tuple(rows[0]), tuple(keys))
    for start in range(0, len(rows), 10_000):  # through the session: it flushes pending ORM rows
        s.execute(stmt, rows[start : start + 10_000])


def _theme_rows(s: Session, workspace: str, theme_id: str) -> list[dict[str, Any]]:
    columns = ItemTheme.__table__.columns
    q = select(ItemTheme).where(ItemTheme.workspace_id == workspace, ItemTheme.theme_id == theme_id)
    return [{c.key: getattr(r, c.key) for c in columns} for r in s.scalars(q)]


def _merged_rows(s: Session, workspace: str, source: str, into: str) -> list[dict[str, Any]]:
    """The source's rows re-pointed at the target; an item already in both keeps one row."""
    have = {r["item_id"]: r for r in _theme_rows(s, workspace, into)}
    out = []
    for row in _theme_rows(s, workspace, source):
        row["theme_id"] = into
        mine = have.get(row["item_id"])
        if mine is not None:
            row["mentions"] += mine["mentions"]
            row["similarity"] = max(row["similarity"], mine["similarity"])
            row["origin"] = "manual" if "manual" in (row["origin"], mine["origin"]) else "live"
        out.append(row)
    return out
