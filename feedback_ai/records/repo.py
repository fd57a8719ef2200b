"""Repository over the system of record. All SQL of the project lives in `feedback_ai/records/`."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache
from sqlalchemy import Table, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from feedback_ai import ids
from feedback_ai.errors import NotFound
from feedback_ai.records import migrate
from feedback_ai.records.models import ApiKey, Item, Job, JobItem, Workspace, utcnow
from feedback_ai.schemas import FeedbackIn, ItemError

SCOPES = ("ingest", "read", "admin")
KEY_PREFIX = "fai_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    workspace: str
    scopes: frozenset[str]
    name: str = "anonymous"  # who, in audit logs: the key's name and prefix


@dataclass(frozen=True)
class ProcessedItem:
    """What a worker reports back for one item."""

    item_id: str
    text: str  # redacted
    mention_count: int
    pii: dict[str, int]


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        args = {"check_same_thread": False, "timeout": SQLITE_LOCK_WAIT_S}
        engine = create_engine(url, connect_args=args)

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:  # concurrent readers while a worker writes
            cur = conn.cursor()
            _wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10)


SQLITE_LOCK_WAIT_S = 30.0  # as the connections' busy timeout


def _wal(cur: Any) -> None:
    """Put the SQLite file in WAL mode. The mode belongs to the file, so the first connection
    sets it and later ones find it set. Switching needs the file to itself and SQLite answers
    "database is locked" at once (no busy wait) while another connection writes, which processes
    opening a new database together (API, worker, CLI) met: retried until the lock wait ends."""
    deadline = time.monotonic() + SQLITE_LOCK_WAIT_S
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Records:
    """`auth_cache_s`: how long a key, once looked up, is trusted without reading its row again
    (each search would otherwise pay a database round trip, ~0.4 ms on SQLite). Unknown keys are
    never cached, so a key created elsewhere works at once."""

    def __init__(self, url: str, auth_cache_s: float = 30.0) -> None:
        self.engine = _make_engine(url)
        migrate.upgrade(self.engine)  # the schema at its newest revision, data kept
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._principals: TTLCache[str, Principal] | None = (
            TTLCache(maxsize=1024, ttl=auth_cache_s) if auth_cache_s > 0 else None
        )
        self._principals_lock = threading.Lock()

    def session(self) -> Session:
        return self._session()

    def ready(self) -> bool:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True

    # --- workspaces and keys
    def ensure_workspace(self, workspace: str) -> None:
        with self.session() as s, s.begin():
            if s.get(Workspace, workspace) is None:
                s.add(Workspace(id=workspace))

    def create_key(
        self, workspace: str, scopes: Iterable[str] = SCOPES, name: str | None = None
    ) -> str:
        scopes = sorted(set(scopes))
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {list(SCOPES)}")
        self.ensure_workspace(workspace)
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        self.add_key(workspace, key, scopes, name)
        return key

    def add_key(self, workspace: str, key: str, scopes: Iterable[str], name: str | None) -> None:
        with self.session() as s, s.begin():
            if s.get(ApiKey, hash_key(key)) is None:
                s.add(
                    ApiKey(
                        key_hash=hash_key(key),
                        prefix=key[:8],
                        workspace_id=workspace,
                        scopes=",".join(sorted(scopes)),
                        name=name,
                    )
                )

    def count_keys(self, workspace: str) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(ApiKey).where(ApiKey.workspace_id == workspace)
            return int(s.scalar(q) or 0)

    def cached_principal(self, key: str) -> Principal | None:
        """The key's principal if it was looked up within `auth_cache_s`; no I/O."""
        if self._principals is None:
            return None
        with self._principals_lock:
            return self._principals.get(hash_key(key))

    def authenticate(self, key: str) -> Principal | None:
        cached = self.cached_principal(key)
        if cached is not None:
            return cached
        digest = hash_key(key)
        with self.session() as s:
            row = s.get(ApiKey, digest)
            if row is None:
                return None
            who = f"{row.name or 'key'} ({row.prefix}…)"
            principal = Principal(row.workspace_id, frozenset(row.scopes.split(",")), who)
        if self._principals is not None:
            with self._principals_lock:
                self._principals[digest] = principal
        return principal

    # --- ingest
    def accept(
        self,
        workspace: str,
        items: Sequence[FeedbackIn],
        rejected: Sequence[ItemError],
        kind: str = "ingest",
        keep_original: bool = False,
        job_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """Write accepted items (pending) and their job in one transaction; return ids.

        With `job_id`, the items join that job (a streamed import accepts chunk by chunk)."""
        joining, job_id = job_id is not None, job_id or str(uuid.uuid4())
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}  # same id twice in a batch: the later one wins
        for item in items:
            item_id = ids.item_id(workspace, item.source, item.external_id, item.text)
            rows[item_id] = {"id": item_id, "workspace_id": workspace}
            rows[item_id].update(_item_fields(item, now, keep_original))
        item_ids = list(rows)
        with self.session() as s, s.begin():
            self._add_to_job(s, job_id, workspace, kind, len(item_ids), rejected)
            self._upsert_items(s, list(rows.values()))
            known: set[str] = set()  # a new job has no rows yet: only a joined one is looked up
            if joining:
                known = set(
                    s.scalars(
                        select(JobItem.item_id).where(
                            JobItem.job_id == job_id, JobItem.item_id.in_(item_ids)
                        )
                    )
                )
            fresh = [{"job_id": job_id, "item_id": i} for i in item_ids if i not in known]
            if fresh:  # a bulk INSERT: no ORM objects (they cost a third of accepting a batch)
                s.execute(insert(JobItem), fresh)
            if known:
                s.execute(
                    update(JobItem)
                    .where(JobItem.job_id == job_id, JobItem.item_id.in_(list(known)))
                    .values(status="pending", error=None)
                )
        return job_id, item_ids

    @staticmethod
    def _add_to_job(
        s: Session,
        job_id: str,
        workspace: str,
        kind: str,
        accepted: int,
        rejected: Sequence[ItemError],
    ) -> None:
        job = s.get(Job, job_id)
        errors = [e.model_dump() for e in rejected]
        if job is None:
            s.add(
                Job(
                    id=job_id, workspace_id=workspace, kind=kind, accepted=accepted, rejected=errors
                )
            )
        else:
            job.accepted += accepted
            job.rejected = [*job.rejected, *errors]

    def add_rejections(
        self, job_id: str, workspace: str, kind: str, rejected: Sequence[ItemError]
    ) -> None:
        with self.session() as s, s.begin():
            self._add_to_job(s, job_id, workspace, kind, 0, rejected)

    @staticmethod
    def _upsert_items(s: Session, rows: list[dict[str, Any]]) -> None:
        """INSERT ... ON CONFLICT (id) DO UPDATE for every row: race-free against other writers."""
        table = Item.__table__
        assert isinstance(table, Table)
        insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table)
        changed = {k: stmt.excluded[k] for k in rows[0] if k not in ("id", "workspace_id")}
        # executemany of one cached statement: a multi-VALUES insert recompiles per chunk
        s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changed), rows)

    def items_to_process(self, job_id: str, item_ids: Sequence[str]) -> list[Item]:
        """Re-fetch a task's items; items already processed for this job are skipped (replay)."""
        with self.session() as s:
            q = (
                select(Item)
                .join(JobItem, JobItem.item_id == Item.id)
                .where(JobItem.job_id == job_id, JobItem.item_id.in_(item_ids))
                .where(JobItem.status == "pending")
            )
            items = list(s.scalars(q))
            s.execute(
                update(JobItem)
                .where(JobItem.job_id == job_id, JobItem.item_id.in_(item_ids))
                .values(attempts=JobItem.attempts + 1)
            )
            s.commit()
            return items

    def mark_stored(self, job_id: str, done: Sequence[ProcessedItem], keep_raw: bool) -> None:
        """One executemany UPDATE by primary key (SQL Core: the ORM's bulk UPDATE spent more
        time collecting its parameters than SQLite spent writing), then the job's rows."""
        if not done:
            return
        items = Item.__table__
        assert isinstance(items, Table)
        values: dict[str, Any] = {"status": "stored", "error": None, "updated_at": utcnow()}
        values.update(mention_count=bindparam("n_mentions"), pii=bindparam("n_pii"))
        if not keep_raw:
            values["text"] = bindparam("redacted")
        stmt = items.update().where(items.c.id == bindparam("item_id")).values(**values)
        rows = [
            {"item_id": p.item_id, "n_mentions": p.mention_count, "n_pii": p.pii}
            | ({} if keep_raw else {"redacted": p.text})
            for p in done
        ]
        with self.session() as s, s.begin():
            s.connection().execute(stmt, rows)
            s.execute(
                update(JobItem)
                .where(JobItem.job_id == job_id, JobItem.item_id.in_([p.item_id for p in done]))
                .values(status="stored", error=None)
            )

    def mark_failed(self, job_id: str, failures: dict[str, str]) -> None:
        with self.session() as s, s.begin():
            for item_id, reason in failures.items():
                s.execute(
                    update(Item).where(Item.id == item_id).values(status="failed", error=reason)
                )
                s.execute(
                    update(JobItem)
                    .where(JobItem.job_id == job_id, JobItem.item_id == item_id)
                    .values(status="failed", error=reason)
                )

    def fail_pending(self, job_id: str, item_ids: Sequence[str], reason: str) -> None:
        """Give up on the items of a batch that are still pending (retries exhausted)."""
        with self.session() as s:
            still = list(
                s.scalars(
                    select(JobItem.item_id).where(
                        JobItem.job_id == job_id,
                        JobItem.item_id.in_(item_ids),
                        JobItem.status == "pending",
                    )
                )
            )
        self.mark_failed(job_id, dict.fromkeys(still, reason))

    def pending_batches(
        self, batch_size: int, older_than: datetime | None = None
    ) -> list[tuple[str, list[str]]]:
        """Every (job, item ids) still pending: what a restart or a sweep must re-dispatch."""
        q = select(JobItem.job_id, JobItem.item_id).where(JobItem.status == "pending")
        if older_than is not None:
            q = q.where(JobItem.updated_at < older_than)
        with self.session() as s:
            rows = s.execute(q.order_by(JobItem.job_id)).all()
        by_job: dict[str, list[str]] = {}
        for job_id, item_id in rows:
            by_job.setdefault(job_id, []).append(item_id)
        return [
            (job_id, ids_[i : i + batch_size])
            for job_id, ids_ in by_job.items()
            for i in range(0, len(ids_), batch_size)
        ]

    # --- reads
    def job(self, workspace: str, job_id: str) -> tuple[Job, dict[str, int], list[dict[str, Any]]]:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.workspace_id != workspace:
                raise NotFound(f"job {job_id} not found", {"job_id": job_id})
            rows = s.execute(
                select(JobItem.status, func.count())
                .where(JobItem.job_id == job_id)
                .group_by(JobItem.status)
            ).all()
            counts = {status: int(n) for status, n in rows}
            if not counts.get("failed"):  # the common case: clients poll while a job runs
                return job, counts, []
            failed = [
                {"id": item_id, "reason": error}
                for item_id, error in s.execute(
                    select(JobItem.item_id, JobItem.error)
                    .where(JobItem.job_id == job_id, JobItem.status == "failed")
                    .limit(1000)
                )
            ]
            return job, counts, failed

    def job_workspace(self, job_id: str) -> str | None:
        with self.session() as s:
            job = s.get(Job, job_id)
            return job.workspace_id if job else None

    def get_item(self, workspace: str, item_id: str) -> Item:
        with self.session() as s:
            item = s.get(Item, item_id)
            if item is None or item.workspace_id != workspace:
                raise NotFound(f"feedback {item_id} not found", {"id": item_id})
            return item

    def delete_item(self, workspace: str, item_id: str) -> None:
        with self.session() as s, s.begin():
            item = s.get(Item, item_id)
            if item is None or item.workspace_id != workspace:
                raise NotFound(f"feedback {item_id} not found", {"id": item_id})
            s.delete(item)  # job_items stay: a job's history keeps its counts

    def count_items(self, workspace: str, status: str | None = None) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(Item).where(Item.workspace_id == workspace)
            if status:
                q = q.where(Item.status == status)
            return int(s.scalar(q) or 0)


def _item_fields(item: FeedbackIn, now: datetime, keep_original: bool) -> dict[str, Any]:
    return {
        "source": item.source,
        "external_id": item.external_id,
        "text": item.text,
        "text_original": item.text if keep_original else None,
        "created_at": item.created_at or now,
        "account_id": item.account_id,
        "segment": item.segment,
        "revenue": item.revenue,
        "rating": item.rating,
        "rating_scale": item.rating_scale,
        "language": item.language,
        "metadata": item.metadata,
        "status": "pending",
        "error": None,
        "updated_at": utcnow(),
    }
