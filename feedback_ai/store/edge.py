"""`EdgeStore`: Qdrant's own engine embedded in-process (`qdrant-edge-py`), one shard on local disk.

Indexing. Qdrant Edge has no background optimizer: new points land in a plain (brute-force)
segment, and the HNSW graph is built only when `optimize()` runs. So this store calls `optimize()`
itself, inside `upsert`, each time `index_every` points have arrived since the last run. The
engine then indexes just the new segment (it extends the existing graph rather than rebuilding
it), so each run costs time in proportion to `index_every`, and the brute-force tail that
searches must scan stays below `index_every` points. Call `optimize()` yourself when a burst of
writes ends (to index the tail and vacuum deleted points); `close()` does not optimize.

Threads. Every engine call holds the GIL for its whole duration (measured with 0.9.0): an
`optimize()` stalls every Python thread of the process, searches included, for as long as it runs.
That is why indexing happens in bounded steps. The engine object can be used from any thread;
an `RLock` serialises calls anyway (they are serialised by the GIL already) so that `close()`
never races a call in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from feedback_ai.errors import Unavailable
from feedback_ai.store import _payload as pl
from feedback_ai.store._base import (
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    MentionPoint,
    ScoredMention,
    SearchFilter,
    VectorStore,
)

_SCROLL_PAGE = 1_000


class EdgeStore(VectorStore):
    """A `VectorStore` on a Qdrant Edge shard at `path` (created on first use, loaded after).

    `index_every`: build the HNSW index for new points once this many have arrived (None: only
    when `optimize()` is called). `quantize`: keep int8 scalar-quantised copies of the vectors
    in RAM for the search (originals stay on disk and rescore the hits); for large shards.
    """

    def __init__(
        self,
        path: Path,
        dim: int,
        *,
        index_every: int | None = 10_000,
        quantize: bool = False,
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.index_every = index_every
        self._lock = threading.RLock()
        config = _config(dim, quantize)
        if (self.path / "edge_config.json").exists():
            self._shard: qe.EdgeShard | None = qe.EdgeShard.load(str(self.path), config)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(self.path), config)
        self._ensure_payload_indexes()
        info = self._engine.info()
        self._unindexed = max(0, info.points_count - info.indexed_vectors_count)

    # --- writes

    def upsert(self, points: Sequence[MentionPoint]) -> None:
        if not points:
            return
        batch = [
            qe.Point(p.id, pl.vector_list(p.vector, self.dim), pl.to_payload(p)) for p in points
        ]
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

        Returns True if the engine changed anything.
        """
        with self._open() as shard:
            changed = shard.optimize()
            self._unindexed = 0
            return changed

    def flush(self) -> None:
        with self._open() as shard:
            shard.flush()

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None

    # --- reads

    def search(
        self,
        workspace: str,
        vector: np.ndarray,
        limit: int,
        filter: SearchFilter | None = None,
        with_vectors: bool = False,
    ) -> list[ScoredMention]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(pl.vector_list(vector, self.dim)),
            filter=_filter(pl.conditions(workspace, filter)),
            with_payload=True,
            with_vector=with_vectors,
        )
        with self._open() as shard:
            hits = shard.query(request)
        return [pl.to_scored(h.id, h.score, h.payload or {}, h.vector) for h in hits]

    def mentions_of(self, workspace: str, item_id: str) -> list[ScoredMention]:
        selector = _filter(pl.conditions(workspace, item_ids=[item_id]))
        records = self._scroll(selector)
        return pl.by_mention_index([pl.to_scored(r.id, 1.0, r.payload or {}) for r in records])

    def count(self, workspace: str, filter: SearchFilter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(pl.conditions(workspace, filter)))
        with self._open() as shard:
            return shard.count(request)

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


def _config(dim: int, quantize: bool) -> qe.EdgeConfig:
    quantization = (
        qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
        if quantize
        else None
    )
    vectors = qe.EdgeVectorParams(
        size=dim,
        distance=qe.Distance.Cosine,
        on_disk=True if quantize else None,
        quantization_config=quantization,
    )
    return qe.EdgeConfig(vectors=vectors)


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
    match = qe.MatchValue(_scalar(values[0])) if one else qe.MatchAny(list(values))
    return qe.FieldCondition(condition.key, match=match)


def _scalar(value: pl.Scalar) -> Any:
    # qdrant-edge-py 0.9.0 turns a Python bool into the integer 1/0 (bool subclasses int), which
    # never matches a JSON boolean; numpy's bool is not an int and arrives as a boolean.
    return np.bool_(value) if isinstance(value, bool) else value
