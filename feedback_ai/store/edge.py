"""`EdgeStore`: Qdrant's own engine embedded in-process (`qdrant-edge-py`), one shard on local disk.

Indexing. Qdrant Edge has no background optimizer: new points land in a plain (brute-force)
segment, and HNSW graphs are built only when `optimize()` runs. So this store calls `optimize()`
itself, inside the `upsert` that brings the count of points written since the last run to
`index_every`; the brute-force tail a search scans stays below that. Each run indexes the new
points into the smallest indexed segment (the engine extends its graph rather than rebuilding
it) while that segment stays under `max_segment_points`, then starts a new one. A run costs time
in proportion to the segment it grows: measured on 2 cores at 384 dims, from ~2 s on a fresh
segment to ~10 s at 100k points and ~20-40 s near 200k (eval/results/bench_store.md). Segments
are searched one by one, so the cap trades those steps against search latency. Call `optimize()`
yourself when a burst of writes ends (to index the tail and vacuum deleted points); `close()`
does not optimize. `optimize()` flushes after it changes anything: the engine keeps replaced
segments memory-mapped until the next flush (2.6 GB RSS at 100k points without it).

Threads. Every engine call holds the GIL for its whole duration (measured with 0.9.0), so an
`optimize()` stalls every Python thread of the process, searches included, while it runs: that
is why indexing happens in bounded steps. The engine object works from any thread; an `RLock`
serialises the calls (the GIL serialises them already) so that `close()` never races a call.
One open store per directory: the engine locks its WAL, and a second open raises `Unavailable`.

Themes. Theme centroids live in a second, small shard beside the first (`<path>-themes`): float32
vectors, no quantisation, searched exactly (a few thousand points at most).

Filters. Payload indexes carry no extra HNSW links (`enable_hnsw=False`: they multiplied the
build time). A filter matching few points is answered by scoring its matches exactly; one
matching a larger share of a segment uses ACORN (see `_search_params`).

Memory. By default (`quantize=True`) int8 copies of the vectors are pinned in RAM for the
search, the float32 originals stay cold on disk, and 2x the candidates are rescored with them:
against float32 vectors warmed into the page cache (`quantize=False`) it measured about half
the index build CPU, faster searches, less RSS and the same recall@10.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from feedback_ai import ids
from feedback_ai.errors import Unavailable
from feedback_ai.store import _bm25 as bm25
from feedback_ai.store import _payload as pl
from feedback_ai.store._base import (
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    MentionPoint,
    ScoredMention,
    SearchFilter,
    ThemeHit,
    ThemePoint,
    VectorStore,
)

_SCROLL_PAGE = 1_000


class EdgeStore(VectorStore):
    """A `VectorStore` on a Qdrant Edge shard at `path` (created on first use, loaded after).

    `index_every`: index new points once this many have arrived (None: only when `optimize()` is
    called). `max_segment_points`: stop growing a segment's graph at this size. `quantize`: int8
    vectors in RAM, float32 originals on disk. The options are saved with the shard on every
    open; a changed option reaches existing segments as they are next optimized.
    """

    def __init__(
        self,
        path: Path,
        dim: int,
        *,
        index_every: int | None = 10_000,
        max_segment_points: int = 200_000,
        quantize: bool = True,
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.index_every = index_every
        self._lock = threading.RLock()
        self._params = _search_params(quantize)
        self._shard: qe.EdgeShard | None = _open_shard(
            self.path, _config(dim, quantize, max_segment_points)
        )
        self._themes: qe.EdgeShard | None = _open_shard(themes_path(self.path), _themes_config(dim))
        self._ensure_payload_indexes()
        # Points not yet in an HNSW graph: counted from the shard on open (earlier processes may
        # have left a tail, and a tail is scanned by brute force: 35k unindexed points made a
        # search at 135k cost 11 ms instead of 1.3), then by the writes of this process.
        self._unindexed = self._unindexed_on_open()

    def _unindexed_on_open(self) -> int:
        """Every point has a dense and a sparse vector and the engine counts each one it has
        indexed, so the tail is about 2 x points - indexed vectors (an over-estimate by the few
        points whose text has no BM25 terms, hence no sparse vector)."""
        with self._open() as shard:
            info = shard.info()
        return max(0, 2 * info.points_count - info.indexed_vectors_count)

    # --- writes

    def upsert(self, points: Sequence[MentionPoint]) -> None:
        if not points:
            return
        batch = [qe.Point(p.id, self._vectors(p), pl.to_payload(p)) for p in points]
        with self._open() as shard:
            shard.update(qe.UpdateOperation.upsert_points(batch))
            self._unindexed += len(batch)
            if self.index_every is not None and self._unindexed >= self.index_every:
                self.optimize()

    def delete_items(self, workspace: str, item_ids: Sequence[str]) -> None:
        if not item_ids:
            return
        selector = _filter(pl.conditions(workspace, item_ids=item_ids))
        with self._open() as shard:
            shard.update(qe.UpdateOperation.delete_points_by_filter(selector))

    def optimize(self) -> bool:
        """Index unindexed points, merge segments, vacuum deletions; blocks until done.

        Flushes afterwards: until a flush the engine keeps the segments that optimization replaced
        memory-mapped (measured: 2.6 GB RSS at 100k points after ten unflushed runs, 0.4 GB
        flushed). Returns True if the engine changed anything.
        """
        with self._open() as shard:
            changed = shard.optimize()
            if changed:
                shard.flush()
            self._unindexed = 0
            return changed

    def flush(self) -> None:
        with self._open() as shard:
            shard.flush()

    def close(self) -> None:
        with self._lock:
            for shard in (self._shard, self._themes):
                if shard is not None:
                    shard.close()
            self._shard = self._themes = None

    # --- reads

    def search(
        self,
        workspace: str,
        vector: np.ndarray,
        limit: int,
        filter: SearchFilter | None = None,
        with_vectors: bool = False,
        text: str | None = None,
    ) -> list[ScoredMention]:
        selector = _filter(pl.conditions(workspace, filter))
        dense = qe.Query.Nearest(pl.vector_list(vector, self.dim))
        if text is None:
            request = qe.QueryRequest(
                limit=limit,
                query=dense,
                filter=selector,
                with_payload=True,
                with_vector=with_vectors,
                params=self._params,
            )
        else:
            indices, values = bm25.query(text)
            sparse = qe.Query.Nearest(qe.SparseVector(indices, values), using=bm25.SPARSE)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=limit, query=dense, filter=selector, params=self._params),
                    qe.Prefetch(limit=limit, query=sparse, filter=selector),
                ],
                query=qe.Fusion.Rrf(k=bm25.RRF_K),  # type: ignore[arg-type]  # stub lists Fusion
                filter=selector,
                with_payload=True,
                with_vector=with_vectors,
            )
        with self._open() as shard:
            hits = shard.query(request)
        return [pl.to_scored(h.id, h.score, h.payload or {}, _dense(h.vector)) for h in hits]

    def _vectors(self, point: MentionPoint) -> dict[str, Any]:
        indices, values = bm25.document(point.text)
        return {
            bm25.DENSE: pl.vector_list(point.vector, self.dim),
            bm25.SPARSE: qe.SparseVector(indices, values),
        }

    def mentions_of(self, workspace: str, item_id: str) -> list[ScoredMention]:
        selector = _filter(pl.conditions(workspace, item_ids=[item_id]))
        records = self._scroll(selector)
        return pl.by_mention_index([pl.to_scored(r.id, 1.0, r.payload or {}) for r in records])

    def count(self, workspace: str, filter: SearchFilter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(pl.conditions(workspace, filter)))
        with self._open() as shard:
            return shard.count(request)

    def scroll(
        self, workspace: str, with_vectors: bool = True, page: int = _SCROLL_PAGE
    ) -> Iterator[list[ScoredMention]]:
        selector = _filter(pl.conditions(workspace))
        offset = None
        while True:  # the lock is released between pages: writers are not held up by a refit
            request = qe.ScrollRequest(
                offset=offset,
                limit=page,
                filter=selector,
                with_payload=True,
                with_vector=[bm25.DENSE] if with_vectors else False,
            )
            with self._open() as shard:
                records, offset = shard.scroll(request)
            yield [pl.to_scored(r.id, 1.0, r.payload or {}, _dense(r.vector)) for r in records]
            if offset is None:
                return

    def retrieve(
        self, workspace: str, point_ids: Sequence[str], with_vectors: bool = True
    ) -> list[ScoredMention]:
        if not point_ids:
            return []
        wanted = [bm25.DENSE] if with_vectors else False
        with self._open() as shard:
            records = shard.retrieve(list(point_ids), with_payload=True, with_vector=wanted)
        found = [pl.to_scored(r.id, 1.0, r.payload or {}, _dense(r.vector)) for r in records]
        return [m for m in found if m.workspace == workspace]

    # --- theme centroids

    def upsert_themes(self, themes: Sequence[ThemePoint]) -> None:
        if not themes:
            return
        batch = [
            qe.Point(
                ids.theme_point_id(t.workspace, t.theme_id, t.kind),
                {bm25.DENSE: pl.vector_list(t.vector, self.dim)},
                pl.theme_payload(t),
            )
            for t in themes
        ]
        with self._open_themes() as shard:
            shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete_themes(self, workspace: str, theme_ids: Sequence[str], kind: str = "theme") -> None:
        if not theme_ids:
            return
        point_ids = [ids.theme_point_id(workspace, t, kind) for t in theme_ids]
        with self._open_themes() as shard:
            shard.update(qe.UpdateOperation.delete_points(point_ids))  # type: ignore[arg-type]

    def list_themes(self, workspace: str, kind: str = "theme") -> list[ThemePoint]:
        selector = _filter(pl.anchor_conditions(workspace, kind))
        out: list[ThemePoint] = []
        offset = None
        with self._open_themes() as shard:
            while True:
                request = qe.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    filter=selector,
                    with_payload=True,
                    with_vector=True,
                )
                page, offset = shard.scroll(request)
                out.extend(pl.to_theme(r.payload or {}, _dense(r.vector)) for r in page)
                if offset is None:
                    return out

    def nearest_themes(
        self, workspace: str, vectors: np.ndarray, limit: int = 1, kind: str = "theme"
    ) -> list[list[ThemeHit]]:
        rows = pl.vector_rows(vectors, self.dim)
        if not len(rows):
            return []
        selector = _filter(pl.anchor_conditions(workspace, kind))
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(row.tolist()),
                filter=selector,
                with_payload=["theme_id"],
            )
            for row in rows
        ]
        with self._open_themes() as shard:
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        return [
            [ThemeHit((h.payload or {})["theme_id"], float(h.score)) for h in hits]
            for hits in results
        ]

    def ready(self) -> bool:
        return self._shard is not None

    def info(self) -> dict[str, int]:
        """Segment and index counters of the shard (approximate, summed over segments)."""
        info = self._engine.info()
        return {
            "segments": info.segments_count,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
        }

    # --- internals

    @property
    def _engine(self) -> qe.EdgeShard:
        if self._shard is None:
            raise Unavailable("the edge store is closed")
        return self._shard

    @contextmanager
    def _open(self) -> Iterator[qe.EdgeShard]:
        with self._lock:
            yield self._engine

    @contextmanager
    def _open_themes(self) -> Iterator[qe.EdgeShard]:
        with self._lock:
            if self._themes is None:
                raise Unavailable("the edge store is closed")
            yield self._themes

    def _scroll(self, selector: qe.Filter) -> list[Any]:
        records: list[Any] = []
        offset = None
        with self._open() as shard:
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=_SCROLL_PAGE, filter=selector, with_payload=True
                )
                page, offset = shard.scroll(request)
                records.extend(page)
                if offset is None:
                    return records

    def _ensure_payload_indexes(self) -> None:
        existing = set(self._engine.info().payload_schema)
        with self._open() as shard:
            for name, schema in _payload_indexes().items():
                if name not in existing:
                    shard.update(qe.UpdateOperation.create_field_index(name, schema))
        with self._open_themes() as shard:
            existing = set(shard.info().payload_schema)
            for name in ("workspace", "kind"):
                if name not in existing:
                    params = qe.KeywordIndexParams(is_tenant=name == "workspace", enable_hnsw=False)
                    shard.update(qe.UpdateOperation.create_field_index(name, params))


def _dense(vector: Any) -> Any:
    """The dense part of a returned vector (named vectors come back as a dict)."""
    return vector.get(bm25.DENSE) if isinstance(vector, dict) else vector


def _search_params(quantize: bool) -> qe.SearchParams:
    """ACORN: a filter matching under ~40% of a segment (but more points than a brute-force scan
    takes) makes plain HNSW traversal lose its way; ACORN also walks neighbours' neighbours.
    Measured at 1M points: recall@10 0.11 -> 0.99 at 6% selectivity, 0.71 -> 0.99 at 25%.
    Quantised: rescore twice the candidates with the originals (recall@10 0.95 -> 0.98)."""
    acorn = qe.AcornSearchParams(enable=True)
    if not quantize:
        return qe.SearchParams(acorn=acorn)
    rescore = qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
    return qe.SearchParams(quantization=rescore, acorn=acorn)


def _open_shard(path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    try:
        if (path / "edge_config.json").exists():
            return qe.EdgeShard.load(str(path), config)
        path.mkdir(parents=True, exist_ok=True)
        return qe.EdgeShard.create(str(path), config)
    except Exception as exc:  # the engine raises bare Exceptions
        if "WouldBlock" in str(exc):  # its WAL lock: one open shard per directory
            raise Unavailable(f"the edge shard at {path} is open elsewhere") from exc
        raise


def themes_path(path: Path) -> Path:
    """Where the theme centroids' shard lives: beside the mentions' shard."""
    return path.with_name(f"{path.name}-themes")


def _themes_config(dim: int) -> qe.EdgeConfig:
    vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
    return qe.EdgeConfig(vectors={bm25.DENSE: vectors})


def _config(dim: int, quantize: bool, max_segment_points: int) -> qe.EdgeConfig:
    # The engine sizes segments by their float32 vector storage, in KB.
    optimizers = qe.EdgeOptimizersConfig(max_segment_size=max_segment_points * dim * 4 // 1024)
    sparse = {bm25.SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
    if not quantize:  # vectors memory-mapped and warmed into the page cache (the engine default)
        vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
        return qe.EdgeConfig(
            vectors={bm25.DENSE: vectors}, sparse_vectors=sparse, optimizers=optimizers
        )
    # int8 copies pinned in RAM do the search; the float32 originals stay on disk (cold) and
    # are read only to rescore the candidates.
    quantization = qe.ScalarQuantizationConfig(
        type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
    )
    vectors = qe.EdgeVectorParams(
        size=dim,
        distance=qe.Distance.Cosine,
        memory=qe.Memory.Cold,
        quantization_config=quantization,
    )
    return qe.EdgeConfig(
        vectors={bm25.DENSE: vectors}, sparse_vectors=sparse, optimizers=optimizers
    )


def _payload_indexes() -> dict[str, Any]:
    """One index per filter field. `enable_hnsw=False`: no extra per-value graph links, which
    would multiply the HNSW build time; filtered searches use the plain graph (and the payload
    index itself when a filter is selective)."""
    indexes: dict[str, Any] = {
        name: qe.KeywordIndexParams(is_tenant=name == "workspace", enable_hnsw=False)
        for name in KEYWORD_FIELDS
    }
    indexes.update({name: qe.FloatIndexParams(enable_hnsw=False) for name in FLOAT_FIELDS})
    return indexes


def _filter(conditions: list[pl.Condition]) -> qe.Filter:
    return qe.Filter(must=[_condition(c) for c in conditions])


def _condition(condition: pl.Condition) -> qe.FieldCondition:
    if isinstance(condition, pl.Range):
        bounds = qe.RangeFloat(gte=condition.gte, lt=condition.lt, lte=condition.lte)
        return qe.FieldCondition(condition.key, range=bounds)
    values = condition.values
    one = len(values) == 1
    match = qe.MatchValue(_scalar(values[0])) if one else qe.MatchAny(list(values))  # type: ignore[arg-type]
    return qe.FieldCondition(condition.key, match=match)


def _scalar(value: pl.Scalar) -> Any:
    # qdrant-edge-py 0.9.0 turns a Python bool into the integer 1/0 (bool subclasses int), which
    # never matches a JSON boolean; numpy's bool is not an int and arrives as a boolean.
    return np.bool_(value) if isinstance(value, bool) else value
