"""EdgeStore specifics: data survives close + reopen, indexing steps, concurrent use."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from feedback_ai.errors import Unavailable
from feedback_ai.store import EdgeStore, SearchFilter
from tests.store.test_contract import DIM, WS, corpus, mention, unit


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    points = corpus(30)
    store = EdgeStore(tmp_path / "shard", DIM)
    store.upsert(points)
    store.delete_items(WS, [points[0].item_id])
    store.close()

    reopened = EdgeStore(tmp_path / "shard", DIM)
    try:
        assert reopened.count(WS) == 29
        assert reopened.count(WS, SearchFilter(source=["app"])) == 7
        assert reopened.search(WS, points[5].vector, limit=1)[0].id == points[5].id
        assert reopened.mentions_of(WS, points[0].item_id) == []
        reopened.upsert([mention("late")])
        assert reopened.count(WS) == 30
    finally:
        reopened.close()


def test_reopen_after_optimize_keeps_data(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM)
    store.upsert(corpus(50))
    store.optimize()
    store.flush()
    store.close()
    reopened = EdgeStore(tmp_path / "shard", DIM)
    assert reopened.count(WS) == 50
    assert reopened.info()["points"] == 50
    reopened.close()


def test_index_every_runs_optimize_inside_upsert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EdgeStore(tmp_path / "shard", DIM, index_every=25)
    calls: list[bool] = []
    real = store.optimize
    monkeypatch.setattr(store, "optimize", lambda: calls.append(real()) or True)
    points = corpus(60)
    for start in range(0, 60, 10):
        store.upsert(points[start : start + 10])
    assert len(calls) == 2  # after 30 and after 60 points
    store.close()


def test_a_tail_left_by_an_earlier_process_counts_towards_the_next_indexing_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = EdgeStore(tmp_path / "shard", DIM, index_every=50)
    first.upsert(corpus(40))  # under index_every: left unindexed
    first.close()
    again = EdgeStore(tmp_path / "shard", DIM, index_every=50)
    assert 40 <= again._unindexed <= 80  # counted from the shard, not from zero
    calls: list[bool] = []
    real = again.optimize
    monkeypatch.setattr(again, "optimize", lambda: calls.append(real()) or True)
    again.upsert(corpus(10, seed=1))  # the tail + 10 reaches index_every: an indexing step
    assert len(calls) == 1  # (at this size the engine keeps a plain segment: nothing to build)
    again.close()


def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM)
    store.close()
    store.close()  # idempotent
    assert not store.ready()
    with pytest.raises(Unavailable):
        store.count(WS)


def test_search_while_another_thread_upserts(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM, index_every=200)
    store.upsert(corpus(20))
    batches = [corpus(50, seed=seed) for seed in range(1, 11)]  # overlapping ids: replays too
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for batch in batches:
                store.upsert(batch)
        except BaseException as exc:  # pragma: no cover - surfaced by the assert below
            errors.append(exc)
        finally:
            done.set()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not done.is_set():
                hits = store.search(
                    WS, unit(rng, 1)[0], limit=5, filter=SearchFilter(source=["app"])
                )
                assert all(h.payload["source"] == "app" for h in hits)
                store.count(WS)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s,)) for s in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert (
        store.count(WS) == 50
    )  # corpus() reuses item names, so every batch overwrote the same ids
    store.close()


def test_reopen_with_the_other_vector_storage(tmp_path: Path) -> None:
    points = corpus(40)
    store = EdgeStore(tmp_path / "shard", DIM, quantize=False)
    store.upsert(points)
    store.optimize()
    store.close()
    reopened = EdgeStore(tmp_path / "shard", DIM, quantize=True)
    assert reopened.count(WS) == 40
    assert reopened.search(WS, points[3].vector, limit=1)[0].id == points[3].id
    reopened.close()


def test_one_open_store_per_directory(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM)
    with pytest.raises(Unavailable):
        EdgeStore(tmp_path / "shard", DIM)
    store.close()
    EdgeStore(tmp_path / "shard", DIM).close()
