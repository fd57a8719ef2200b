"""The store contract, run against every backend so they cannot drift.

Backends: `EdgeStore` on tmp_path (qdrant-edge-py) and `QdrantStore` in qdrant-client's local
mode (":memory:", the stand-in for a Qdrant server). Vectors are seeded random unit vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedback_ai import ids
from feedback_ai.errors import InvalidInput
from feedback_ai.store import (
    EdgeStore,
    MentionPoint,
    QdrantStore,
    ScoredMention,
    SearchFilter,
    VectorStore,
)
from feedback_ai.store._base import ThemePoint
from feedback_ai.store._payload import to_payload, to_point

DIM = 16
WS = "acme"
OTHER_WS = "globex"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SOURCES = ("app", "email", "nps", "sales")


@pytest.fixture(params=["edge", "edge-f32", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """Edge as shipped (int8-quantised search), edge with float32 vectors, qdrant-client local."""
    s: VectorStore
    if request.param == "qdrant":
        s = QdrantStore(":memory:", DIM)
    else:
        s = EdgeStore(tmp_path / "edge", DIM, quantize=request.param == "edge")
    yield s
    s.close()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def mention(
    item: str, index: int = 0, vector: np.ndarray | None = None, workspace: str = WS, **fields: Any
) -> MentionPoint:
    item_id = ids.item_id(workspace, "test", item, "")
    return MentionPoint(
        id=ids.mention_id(item_id, index),
        vector=vector
        if vector is not None
        else unit(np.random.default_rng(hash(item) % 2**32), 1)[0],
        workspace=workspace,
        item_id=item_id,
        mention_index=index,
        text=f"{item} #{index}",
        source=fields.pop("source", "app"),
        created_at=fields.pop("created_at", T0),
        **fields,
    )


def corpus(n: int = 40, workspace: str = WS, seed: int = 0) -> list[MentionPoint]:
    """Items with every filter field varied (and sometimes absent)."""
    rng = np.random.default_rng(seed)
    vectors = unit(rng, n)
    return [
        mention(
            f"item-{i}",
            vector=vectors[i],
            workspace=workspace,
            source=SOURCES[i % 4],
            created_at=T0 + timedelta(days=i),
            account_id=f"acct-{i % 5}" if i % 7 else None,
            segment=("enterprise", "smb")[i % 2] if i % 3 else None,
            rating=float(i % 11) if i % 4 != 3 else None,
            rating_scale="nps" if i % 4 != 3 else None,
            metadata={
                "plan": ("free", "pro")[i % 2],
                "seats": i % 3,
                "beta": i % 2 == 0,
                "arr": i * 0.5,
            },
        )
        for i in range(n)
    ]


def ids_of(hits: list[ScoredMention]) -> set[str]:
    return {h.id for h in hits}


# --- search


def test_search_ranks_by_cosine_best_first(store: VectorStore) -> None:
    points = corpus()
    store.upsert(points)
    rng = np.random.default_rng(1)
    query = points[7].vector + 0.05 * unit(rng, 1)[0]
    hits = store.search(WS, query, limit=5)

    matrix = np.stack([p.vector for p in points])
    cosine = matrix @ (query / np.linalg.norm(query))
    expected = np.argsort(-cosine)[:5]
    assert [h.id for h in hits] == [points[i].id for i in expected]
    assert [h.score for h in hits] == pytest.approx(cosine[expected].tolist(), abs=1e-4)
    top = hits[0]
    assert (top.workspace, top.item_id, top.mention_index, top.text) == (
        WS,
        points[7].item_id,
        0,
        "item-7 #0",
    )
    assert top.vector is None


def test_search_respects_limit_and_empty_store(store: VectorStore) -> None:
    assert store.search(WS, unit(np.random.default_rng(0), 1)[0], limit=3) == []
    store.upsert(corpus())
    assert len(store.search(WS, corpus()[0].vector, limit=3)) == 3


def test_with_vectors_returns_the_stored_unit_vector(store: VectorStore) -> None:
    points = corpus(5)
    store.upsert(points)
    hit = store.search(WS, points[2].vector, limit=1, with_vectors=True)[0]
    assert hit.id == points[2].id
    assert hit.vector is not None and hit.vector.dtype == np.float32
    np.testing.assert_allclose(hit.vector, points[2].vector, atol=1e-5)


def test_wrong_vector_dimension_is_invalid_input(store: VectorStore) -> None:
    with pytest.raises(InvalidInput):
        store.upsert([mention("x", vector=np.ones(DIM + 1, dtype=np.float32))])
    with pytest.raises(InvalidInput):
        store.search(WS, np.ones(DIM - 1, dtype=np.float32), limit=1)


# --- writes


def test_replaying_the_same_points_is_idempotent(store: VectorStore) -> None:
    points = corpus()
    store.upsert(points)
    store.upsert(points)
    store.upsert(points[:10])
    assert store.count(WS) == len(points)


def test_upsert_overwrites_by_id(store: VectorStore) -> None:
    first = mention("item")
    store.upsert([first])
    changed = mention("item", source="email", metadata={"plan": "pro"})
    store.upsert([changed])
    (only,) = store.mentions_of(WS, first.item_id)
    assert only.payload["source"] == "email"
    assert only.payload["metadata"] == {"plan": "pro"}
    assert store.count(WS) == 1


def test_delete_items_removes_every_mention_of_those_items_only(store: VectorStore) -> None:
    points = [mention(f"item-{i}", index=j) for i in range(4) for j in range(3)]
    store.upsert(points)
    gone, kept = points[0].item_id, points[3].item_id
    store.delete_items(WS, [gone, "no-such-item"])
    assert store.mentions_of(WS, gone) == []
    assert len(store.mentions_of(WS, kept)) == 3
    assert store.count(WS) == 9
    assert gone not in {h.item_id for h in store.search(WS, points[0].vector, limit=20)}
    store.delete_items(WS, [])
    assert store.count(WS) == 9


def test_mentions_of_orders_by_mention_index(store: VectorStore) -> None:
    points = [mention("long", index=j) for j in (3, 0, 4, 1, 2)]
    store.upsert([*points, mention("other", index=0)])
    found = store.mentions_of(WS, points[0].item_id)
    assert [m.mention_index for m in found] == [0, 1, 2, 3, 4]
    assert all(m.score == 1.0 for m in found)
    assert store.mentions_of(WS, "unknown") == []


# --- filters

FILTER_CASES: dict[str, tuple[SearchFilter, Callable[[MentionPoint], bool]]] = {
    "source list": (SearchFilter(source=["app", "nps"]), lambda p: p.source in ("app", "nps")),
    "source one": (SearchFilter(source=["email"]), lambda p: p.source == "email"),
    "source none of empty list": (SearchFilter(source=[]), lambda p: False),
    "account_id": (
        SearchFilter(account_id=["acct-1", "acct-2"]),
        lambda p: p.account_id in ("acct-1", "acct-2"),
    ),
    "segment": (SearchFilter(segment=["smb"]), lambda p: p.segment == "smb"),
    "created_from inclusive": (
        SearchFilter(created_from=T0 + timedelta(days=10)),
        lambda p: p.created_at >= T0 + timedelta(days=10),
    ),
    "created_to exclusive": (
        SearchFilter(created_to=T0 + timedelta(days=10)),
        lambda p: p.created_at < T0 + timedelta(days=10),
    ),
    "created range": (
        SearchFilter(created_from=T0 + timedelta(days=5), created_to=T0 + timedelta(days=12)),
        lambda p: T0 + timedelta(days=5) <= p.created_at < T0 + timedelta(days=12),
    ),
    "created naive is utc": (
        SearchFilter(created_from=datetime(2024, 1, 21)),
        lambda p: p.created_at >= T0 + timedelta(days=20),
    ),
    "rating min inclusive": (
        SearchFilter(rating_min=9),
        lambda p: p.rating is not None and p.rating >= 9,
    ),
    "rating max inclusive": (
        SearchFilter(rating_max=2.0),
        lambda p: p.rating is not None and p.rating <= 2,
    ),
    "rating range": (
        SearchFilter(rating_min=3, rating_max=6),
        lambda p: p.rating is not None and 3 <= p.rating <= 6,
    ),
    "metadata str": (SearchFilter(metadata={"plan": "pro"}), lambda p: p.metadata["plan"] == "pro"),
    "metadata int": (SearchFilter(metadata={"seats": 2}), lambda p: p.metadata["seats"] == 2),
    "metadata bool": (SearchFilter(metadata={"beta": True}), lambda p: p.metadata["beta"] is True),
    "metadata float": (SearchFilter(metadata={"arr": 7.5}), lambda p: p.metadata["arr"] == 7.5),
    "metadata missing key": (SearchFilter(metadata={"nope": "x"}), lambda p: False),
    "combined": (
        SearchFilter(
            source=["app", "email", "nps"],
            segment=["enterprise", "smb"],
            created_from=T0 + timedelta(days=3),
            rating_min=1,
            metadata={"plan": "free"},
        ),
        lambda p: (
            p.source != "sales"
            and p.segment is not None
            and p.created_at >= T0 + timedelta(days=3)
            and p.rating is not None
            and p.rating >= 1
            and p.metadata["plan"] == "free"
        ),
    ),
}


@pytest.mark.parametrize("case", FILTER_CASES)
def test_filters_match_in_count_and_search(store: VectorStore, case: str) -> None:
    flt, predicate = FILTER_CASES[case]
    points = corpus()
    store.upsert(points + corpus(workspace=OTHER_WS, seed=1))
    expected = {p.id for p in points if predicate(p)}
    assert store.count(WS, flt) == len(expected)
    assert ids_of(store.search(WS, points[0].vector, limit=100, filter=flt)) == expected


def test_bad_metadata_key_is_invalid_input(store: VectorStore) -> None:
    with pytest.raises(InvalidInput):
        store.count(WS, SearchFilter(metadata={"a.b": 1}))


# --- workspaces


def test_workspaces_are_isolated(store: VectorStore) -> None:
    ours = corpus(20)
    theirs = corpus(30, workspace=OTHER_WS)
    # A look-alike in the other workspace: same item id, nearer to the query than anything of ours.
    twin = MentionPoint(
        **{**ours[0].__dict__, "id": ids.mention_id("twin", 0), "workspace": OTHER_WS}
    )
    store.upsert(ours + theirs + [twin])

    assert store.count(WS) == 20
    assert store.count(OTHER_WS) == 31
    assert store.count("nobody") == 0
    hits = store.search(WS, ours[0].vector, limit=100)
    assert {h.workspace for h in hits} == {WS} and len(hits) == 20
    assert [m.id for m in store.mentions_of(WS, ours[0].item_id)] == [ours[0].id]

    store.delete_items(WS, [ours[0].item_id])
    assert [m.id for m in store.mentions_of(OTHER_WS, ours[0].item_id)] == [twin.id]
    assert store.count(OTHER_WS) == 31
    store.delete_items("nobody", [p.item_id for p in theirs])
    assert store.count(OTHER_WS) == 31


# --- payload layout (shared by both backends)


def test_payload_round_trip() -> None:
    point = corpus(3)[1]
    payload = to_payload(point)
    assert payload["created_at"] == pytest.approx(T0.timestamp() + 86_400)
    back = to_point(point.id, point.vector, payload)
    assert back.__dict__.keys() == point.__dict__.keys()
    for name in point.__dict__:
        if name != "vector":
            assert getattr(back, name) == getattr(point, name), name
    bare = mention("bare", created_at=datetime(2024, 1, 1))  # naive: taken as UTC
    assert set(to_payload(bare)) == {
        "workspace",
        "item_id",
        "mention_index",
        "text",
        "source",
        "created_at",
        "metadata",
    }
    assert to_point(bare.id, bare.vector, to_payload(bare)).created_at == T0


def test_search_payload_is_the_shared_layout(store: VectorStore) -> None:
    point = corpus(3)[1]
    store.upsert([point])
    (hit,) = store.search(WS, point.vector, limit=1)
    assert hit.payload == to_payload(point)


def _texts(store: VectorStore, texts: list[str], workspace: str = WS) -> list[MentionPoint]:
    rng = np.random.default_rng(3)
    points = [
        MentionPoint(
            id=ids.mention_id(ids.item_id(workspace, "t", str(i), ""), 0),
            vector=unit(rng, 1)[0],
            workspace=workspace,
            item_id=ids.item_id(workspace, "t", str(i), ""),
            mention_index=0,
            text=text,
            source="app" if i % 2 else "nps",
            created_at=T0,
        )
        for i, text in enumerate(texts)
    ]
    store.upsert(points)
    return points


def test_hybrid_lifts_the_lexical_match(store: VectorStore) -> None:
    """Random vectors carry no meaning: only the BM25 half can put the word match first."""
    texts = ["invoice export to PDF fails", "dark mode", "slow login", "crash on start"] * 3
    points = _texts(store, [f"{t} {i}" for i, t in enumerate(texts)])
    query = unit(np.random.default_rng(99), 1)[0]
    dense = store.search(WS, query, 12)
    hybrid = store.search(WS, query, 12, text="pdf invoice export")
    pdf = {p.id for p in points if "PDF" in p.text}
    assert {h.id for h in hybrid[:3]} == pdf
    assert {h.id for h in dense[:3]} != pdf  # the dense ranking alone does not get there
    assert len(hybrid) == 12 and hybrid[0].score >= hybrid[-1].score


def test_hybrid_respects_filters_and_workspaces(store: VectorStore) -> None:
    _texts(store, ["refund request for order", "refund not received"])
    _texts(store, ["refund refund refund"], workspace=OTHER_WS)
    query = unit(np.random.default_rng(5), 1)[0]
    hits = store.search(WS, query, 10, SearchFilter(source=["nps"]), text="refund")
    assert [h.text for h in hits] == ["refund request for order"]
    hits = store.search(WS, query, 10, text="refund", with_vectors=True)
    assert {h.workspace for h in hits} == {WS}
    assert all(h.vector is not None and h.vector.shape == (DIM,) for h in hits)


# --- bulk reads (refits)


def test_scroll_pages_through_every_mention_of_the_workspace(store: VectorStore) -> None:
    ours, theirs = corpus(25), corpus(7, workspace=OTHER_WS, seed=1)
    store.upsert(ours + theirs)
    pages = list(store.scroll(WS, page=10))
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = {m.id: m for page in pages for m in page}
    assert set(seen) == {p.id for p in ours}
    for p in ours:
        assert seen[p.id].vector is not None
        np.testing.assert_allclose(seen[p.id].vector, p.vector, atol=1e-5)
        assert seen[p.id].payload == to_payload(p)
    bare = [m for page in store.scroll(WS, with_vectors=False) for m in page]
    assert len(bare) == 25 and all(m.vector is None for m in bare)
    assert list(store.scroll("nobody")) == [[]]


def test_retrieve_returns_only_this_workspaces_points(store: VectorStore) -> None:
    ours, theirs = corpus(5), corpus(5, workspace=OTHER_WS, seed=1)
    store.upsert(ours + theirs)
    wanted = [ours[1].id, ours[3].id, theirs[0].id, ids.mention_id("missing", 0)]
    found = {m.id: m for m in store.retrieve(WS, wanted)}
    assert set(found) == {ours[1].id, ours[3].id}
    np.testing.assert_allclose(found[ours[3].id].vector, ours[3].vector, atol=1e-5)
    assert store.retrieve(WS, []) == []


# --- theme centroids


def themes(n: int, workspace: str = WS, seed: int = 0) -> list[ThemePoint]:
    vectors = unit(np.random.default_rng(seed), n)
    return [ThemePoint(workspace, f"t{i}", vectors[i], label=f"theme {i}") for i in range(n)]


def test_nearest_themes_ranks_centroids_by_cosine(store: VectorStore) -> None:
    ours = themes(6)
    store.upsert_themes(ours + themes(6, workspace=OTHER_WS, seed=1))
    rng = np.random.default_rng(3)
    queries = np.stack([ours[2].vector, ours[5].vector]) + 0.1 * unit(rng, 2)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    hits = store.nearest_themes(WS, queries, limit=3)

    cosine = queries @ np.stack([t.vector for t in ours]).T
    for row, found in zip(cosine, hits, strict=True):
        order = np.argsort(-row)[:3]
        assert [h.theme_id for h in found] == [f"t{i}" for i in order]
        assert [h.score for h in found] == pytest.approx(row[order].tolist(), abs=1e-4)
    assert store.nearest_themes("nobody", queries) == [[], []]
    assert store.nearest_themes(WS, np.zeros((0, DIM), dtype=np.float32)) == []


def test_theme_centroids_upsert_list_and_delete(store: VectorStore) -> None:
    ours = themes(4)
    store.upsert_themes(ours + themes(2, workspace=OTHER_WS))
    moved = ThemePoint(WS, "t1", ours[0].vector, label="renamed", status="noise")
    store.upsert_themes([moved])  # overwrite by theme id
    listed = {t.theme_id: t for t in store.list_themes(WS)}
    assert set(listed) == {"t0", "t1", "t2", "t3"}
    assert (listed["t1"].label, listed["t1"].status) == ("renamed", "noise")
    np.testing.assert_allclose(listed["t1"].vector, ours[0].vector, atol=1e-5)

    store.delete_themes(WS, ["t0", "t1"])
    assert {t.theme_id for t in store.list_themes(WS)} == {"t2", "t3"}
    assert {t.theme_id for t in store.list_themes(OTHER_WS)} == {"t0", "t1"}
    with pytest.raises(InvalidInput):
        store.nearest_themes(WS, np.zeros((2, DIM + 1), dtype=np.float32))


def test_theme_and_roadmap_vectors_do_not_mix(store: VectorStore) -> None:
    ours = themes(3)
    roadmap = [
        ThemePoint(WS, t.theme_id, t.vector, label="item", kind="roadmap")
        for t in themes(2, seed=5)
    ]
    store.upsert_themes(ours + roadmap)  # same ids ("t0", "t1"), other kind: separate points
    assert {t.theme_id for t in store.list_themes(WS)} == {"t0", "t1", "t2"}
    assert [t.kind for t in store.list_themes(WS, kind="roadmap")] == ["roadmap", "roadmap"]
    hits = store.nearest_themes(WS, np.stack([roadmap[0].vector]), limit=5, kind="roadmap")
    assert hits[0][0].theme_id == "t0" and len(hits[0]) == 2
    store.delete_themes(WS, ["t0"], kind="roadmap")
    assert {t.theme_id for t in store.list_themes(WS)} == {"t0", "t1", "t2"}
    assert [t.theme_id for t in store.list_themes(WS, kind="roadmap")] == ["t1"]
