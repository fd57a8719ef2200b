"""The records repository on both databases it supports: SQLite (embedded), PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedback_ai.config import Settings
from feedback_ai.errors import NotFound
from feedback_ai.records import ProcessedItem, Records
from feedback_ai.schemas import FeedbackIn, ItemError

PG = os.environ.get("FEEDBACK_AI_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test")


def _pg_schema() -> Iterator[str]:
    """A throwaway schema on the local PostgreSQL, so tests never see each other's rows."""
    try:
        engine = create_engine(PG)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        if os.environ.get("CI"):
            raise
        pytest.skip("no PostgreSQL on localhost")
    schema = "t_" + uuid.uuid4().hex[:10]
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Records]:
    if request.param == "sqlite":
        url = Settings(data_dir=tmp_path).resolved_database_url
        yield Records(url)
        return
    gen = _pg_schema()
    url = next(gen)
    recs = Records(url)
    yield recs
    recs.engine.dispose()
    next(gen, None)


def _items(*texts: str, **kw: object) -> list[FeedbackIn]:
    return [FeedbackIn(text=t, **kw) for t in texts]  # type: ignore[arg-type]


def test_keys_scopes_and_workspaces(records: Records) -> None:
    key = records.create_key("acme", ["read"])
    principal = records.authenticate(key)
    assert principal is not None and principal.workspace == "acme"
    assert principal.scopes == {"read"}
    assert records.authenticate(key + "x") is None
    with pytest.raises(ValueError, match="unknown scopes"):
        records.create_key("acme", ["root"])


def test_key_lookups_are_cached_for_auth_cache_s(tmp_path: Path) -> None:
    url = Settings(data_dir=tmp_path).resolved_database_url
    records = Records(url, auth_cache_s=1.0)
    key = records.create_key("acme", ["read"])
    assert records.cached_principal(key) is None  # nothing looked up yet
    assert records.authenticate(key + "x") is None
    assert records.cached_principal(key + "x") is None  # unknown keys are not cached
    first = records.authenticate(key)
    assert first is not None and records.cached_principal(key) == first
    with records.session() as s, s.begin():  # the row changes: the cache still answers...
        s.execute(text("UPDATE api_keys SET scopes = 'admin,read'"))
    assert records.authenticate(key) == first
    time.sleep(1.05)  # ...until its entry expires
    assert records.cached_principal(key) is None
    again = records.authenticate(key)
    assert again is not None and again.scopes == {"admin", "read"}
    uncached = Records(url, auth_cache_s=0)
    assert uncached.authenticate(key) == again and uncached.cached_principal(key) is None


def test_accept_process_and_counts(records: Records) -> None:
    records.ensure_workspace("w")
    rejected = [ItemError(index=2, reason="bad")]
    job_id, ids = records.accept("w", _items("a", "b"), rejected)
    assert len(ids) == 2
    todo = records.items_to_process(job_id, ids)
    assert {i.text for i in todo} == {"a", "b"}
    records.mark_stored(job_id, [ProcessedItem(ids[0], "A", 1, {"EMAIL": 1})], keep_raw=False)
    records.mark_failed(job_id, {ids[1]: "broken"})
    job, counts, failed = records.job("w", job_id)
    assert counts == {"stored": 1, "failed": 1}
    assert failed == [{"id": ids[1], "reason": "broken"}]
    assert job.rejected[0]["reason"] == "bad"
    assert records.get_item("w", ids[0]).text == "A"  # redacted text replaced the raw one
    assert records.items_to_process(job_id, ids) == []  # a replay finds nothing left to do


def test_resend_updates_same_row_and_reopens(records: Records) -> None:
    records.ensure_workspace("w")
    kw = {"source": "zendesk", "external_id": "9"}
    job1, [id1] = records.accept("w", _items("old", **kw), [])
    records.mark_stored(job1, [ProcessedItem(id1, "old", 1, {})], keep_raw=False)
    job2, [id2] = records.accept("w", _items("new", **kw), [])
    assert id1 == id2 and records.count_items("w") == 1
    assert records.get_item("w", id1).status == "pending"
    assert records.pending_batches(10) == [(job2, [id1])]


def test_import_chunks_join_one_job(records: Records) -> None:
    records.ensure_workspace("w")
    job, _ = records.accept("w", _items("a"), [], kind="import")
    records.accept("w", _items("b"), [ItemError(index=5, reason="x")], "import", job_id=job)
    records.add_rejections(job, "w", "import", [ItemError(index=6, reason="y")])
    row, counts, _ = records.job("w", job)
    assert row.accepted == 2 and counts == {"pending": 2}
    assert [e["index"] for e in row.rejected] == [5, 6]


def test_fail_pending_only_touches_pending(records: Records) -> None:
    records.ensure_workspace("w")
    job, ids = records.accept("w", _items("a", "b"), [])
    records.mark_stored(job, [ProcessedItem(ids[0], "a", 1, {})], keep_raw=False)
    records.fail_pending(job, ids, "gave up")
    _, counts, _ = records.job("w", job)
    assert counts == {"stored": 1, "failed": 1}


def test_other_workspace_sees_nothing(records: Records) -> None:
    records.ensure_workspace("a")
    records.ensure_workspace("b")
    job, [item] = records.accept("a", _items("mine"), [])
    with pytest.raises(NotFound):
        records.job("b", job)
    with pytest.raises(NotFound):
        records.get_item("b", item)
    with pytest.raises(NotFound):
        records.delete_item("b", item)
    records.delete_item("a", item)
    assert records.count_items("a") == 0


def test_concurrent_style_resubmits_upsert(records: Records) -> None:
    records.ensure_workspace("w")
    _, ids1 = records.accept("w", _items("x", "x", "y"), [])
    _, ids2 = records.accept("w", _items("y", "x"), [])
    assert len(ids1) == 2 and set(ids1) == set(ids2)
    assert records.count_items("w") == 2


def test_live_theme_writes_check_the_version_and_count_the_pool(records: Records) -> None:
    from feedback_ai.records.theme_repo import ThemeRecords

    themes = ThemeRecords(records)
    themes.pool_checked("acme")  # the taxonomy row, at version 0, nothing pending
    now = datetime.now(UTC)

    def row(item: str, theme: str, origin: str = "live") -> dict[str, object]:
        return {
            "workspace_id": "acme", "item_id": item, "theme_id": theme, "mentions": 1,
            "similarity": 0.8, "sentiment": None, "origin": origin, "created_at": now,
            "created_ts": now.timestamp(), "account_id": None, "revenue": None, "rating": None,
            "rating_scale": None,
        }  # fmt: skip

    def pooled(item: str, n: int) -> list[dict[str, object]]:
        return [
            {"workspace_id": "acme", "point_id": f"{item}-{i}", "item_id": item,
             "similarity": 0.1, "text": "off topic", "created_at": now}
            for i in range(n)
        ]  # fmt: skip

    assert themes.live("acme", ["a", "b"], [row("a", "t1")], pooled("b", 2), version=0) == 2
    assert themes.live("acme", ["c"], [], pooled("c", 3), version=0) == 5
    assert themes.live("acme", ["d"], [row("d", "t1")], pooled("d", 1), version=1) is None
    assert themes.item_theme_ids("acme", "d") == [] and themes.pool_size("acme") == 5
    assert themes.pool_pending("acme") == 5  # the refused write counted nothing

    # the same item again replaces its live rows and pool entries; a person's row stays
    themes.commit("acme", "alice", add_rows=[row("a", "t9", origin="manual")])
    assert themes.live("acme", ["a", "b"], [row("a", "t2")], [], version=1) == 5
    assert sorted(themes.item_theme_ids("acme", "a")) == ["t2", "t9"]
    assert themes.pool_size("acme") == 3
    themes.live("acme", ["a"], [], [], manual_too=True)  # the item was deleted
    assert themes.item_theme_ids("acme", "a") == []
    themes.pool_checked("acme")
    assert themes.pool_pending("acme") == 0 and themes.pool_size("acme") == 3
