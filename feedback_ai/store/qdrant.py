"""`QdrantStore`: a Qdrant server (or cluster) through `qdrant-client`.

`location` is the server URL (`http://qdrant:6333`), or `":memory:"` / a directory for
qdrant-client's local mode. Local mode is a pure-Python stand-in used by the tests: it searches by
brute force, ignores payload indexes and search parameters, and is not thread-safe, so this
store serialises calls with a lock in local mode only. Against a server, calls run concurrently
and every write waits for the server to apply it (`wait=True`), so a search right after an
upsert sees it. Theme centroids live in a second collection, `<collection>_themes`.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from feedback_ai import ids
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


class QdrantStore(VectorStore):
    """A `VectorStore` on one Qdrant collection (created with its payload indexes if missing)."""

    def __init__(
        self,
        location: str,
        dim: int,
        collection: str = "feedback_mentions",
        api_key: str | None = None,
    ) -> None:
        self.dim = dim
        self.collection = collection
        self.themes_collection = f"{collection}_themes"
        self.local = not location.startswith(("http://", "https://"))
        if not self.local:
            self._client = QdrantClient(url=location, api_key=api_key)
        elif location == ":memory:":
            self._client = QdrantClient(location=":memory:")
        else:
            self._client = QdrantClient(path=location)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.local else contextlib.nullcontext()
        )
        # ACORN for selective filters, as in EdgeStore; local mode searches exactly and warns
        # about any search parameter, so it gets none.
        self._params = (
            None if self.local else models.SearchParams(acorn=models.AcornSearchParams(enable=True))
        )
        self._ensure_collection()

    # --- writes

    def upsert(self, points: Sequence[MentionPoint]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(id=p.id, vector=self._vectors(p), payload=pl.to_payload(p))
            for p in points
        ]
        with self._lock:
            self._client.upsert(self.collection, points=structs, wait=True)

    def delete_items(self, workspace: str, item_ids: Sequence[str]) -> None:
        if not item_ids:
            return
        selector = models.FilterSelector(
            filter=_filter(pl.conditions(workspace, item_ids=item_ids))
        )
        with self._lock:
            self._client.delete(self.collection, points_selector=selector, wait=True)

    def close(self) -> None:
        with self._lock:
            self._client.close()

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
        dense = pl.vector_list(vector, self.dim)
        hybrid: dict[str, Any] = {"query": dense}
        if text is not None:
            indices, values = bm25.query(text)
            sparse = models.SparseVector(indices=indices, values=values)
            hybrid = {
                "prefetch": [
                    models.Prefetch(query=dense, filter=selector, limit=limit, params=self._params),
                    models.Prefetch(query=sparse, using=bm25.SPARSE, filter=selector, limit=limit),
                ],
                "query": models.RrfQuery(rrf=models.Rrf(k=bm25.RRF_K)),
            }
        with self._lock:
            response = self._client.query_points(
                self.collection,
                query_filter=selector,
                limit=limit,
                with_payload=True,
                with_vectors=[bm25.DENSE] if with_vectors else False,
                search_params=self._params,
                **hybrid,
            )
        return [
            pl.to_scored(h.id, h.score, h.payload or {}, _dense(h.vector) if with_vectors else None)
            for h in response.points
        ]

    def _vectors(self, point: MentionPoint) -> dict[str, Any]:
        indices, values = bm25.document(point.text)
        return {
            bm25.DENSE: pl.vector_list(point.vector, self.dim),
            bm25.SPARSE: models.SparseVector(indices=indices, values=values),
        }

    def mentions_of(self, workspace: str, item_id: str) -> list[ScoredMention]:
        selector = _filter(pl.conditions(workspace, item_ids=[item_id]))
        records: list[models.Record] = []
        offset = None
        with self._lock:
            while True:
                page, offset = self._client.scroll(
                    self.collection, scroll_filter=selector, limit=_SCROLL_PAGE, offset=offset
                )
                records.extend(page)
                if offset is None:
                    break
        return pl.by_mention_index([pl.to_scored(r.id, 1.0, r.payload or {}) for r in records])

    def count(self, workspace: str, filter: SearchFilter | None = None) -> int:
        with self._lock:
            result = self._client.count(
                self.collection, count_filter=_filter(pl.conditions(workspace, filter)), exact=True
            )
        return result.count

    def scroll(
        self, workspace: str, with_vectors: bool = True, page: int = _SCROLL_PAGE
    ) -> Iterator[list[ScoredMention]]:
        selector = _filter(pl.conditions(workspace))
        offset = None
        while True:
            with self._lock:
                records, offset = self._client.scroll(
                    self.collection,
                    scroll_filter=selector,
                    limit=page,
                    offset=offset,
                    with_vectors=[bm25.DENSE] if with_vectors else False,
                )
            yield [pl.to_scored(r.id, 1.0, r.payload or {}, _dense(r.vector)) for r in records]
            if offset is None:
                return

    def retrieve(
        self, workspace: str, point_ids: Sequence[str], with_vectors: bool = True
    ) -> list[ScoredMention]:
        if not point_ids:
            return []
        with self._lock:
            records = self._client.retrieve(
                self.collection,
                list(point_ids),
                with_vectors=[bm25.DENSE] if with_vectors else False,
            )
        found = [pl.to_scored(r.id, 1.0, r.payload or {}, _dense(r.vector)) for r in records]
        return [m for m in found if m.workspace == workspace]

    # --- theme centroids

    def upsert_themes(self, themes: Sequence[ThemePoint]) -> None:
        if not themes:
            return
        structs = [
            models.PointStruct(
                id=ids.theme_point_id(t.workspace, t.theme_id, t.kind),
                vector=pl.vector_list(t.vector, self.dim),
                payload=pl.theme_payload(t),
            )
            for t in themes
        ]
        with self._lock:
            self._client.upsert(self.themes_collection, points=structs, wait=True)

    def delete_themes(self, workspace: str, theme_ids: Sequence[str], kind: str = "theme") -> None:
        if not theme_ids:
            return
        selector = models.PointIdsList(
            points=[ids.theme_point_id(workspace, t, kind) for t in theme_ids]
        )
        with self._lock:
            self._client.delete(self.themes_collection, points_selector=selector, wait=True)

    def list_themes(self, workspace: str, kind: str = "theme") -> list[ThemePoint]:
        selector = _filter(pl.anchor_conditions(workspace, kind))
        out: list[ThemePoint] = []
        offset = None
        with self._lock:
            while True:
                page, offset = self._client.scroll(
                    self.themes_collection,
                    scroll_filter=selector,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_vectors=True,
                )
                out.extend(pl.to_theme(r.payload or {}, r.vector) for r in page)
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
            models.QueryRequest(
                query=row.tolist(), filter=selector, limit=limit, with_payload=["theme_id"]
            )
            for row in rows
        ]
        with self._lock:
            responses = self._client.query_batch_points(self.themes_collection, requests)
        return [
            [ThemeHit((h.payload or {})["theme_id"], float(h.score)) for h in r.points]
            for r in responses
        ]

    def ready(self) -> bool:
        try:
            with self._lock:
                return self._client.collection_exists(self.collection)
        except Exception:  # any transport failure means "not ready", never a crash
            return False

    # --- internals

    def _ensure_collection(self) -> None:
        self._ensure_themes_collection()
        with self._lock:
            if self._client.collection_exists(self.collection):
                return
            self._client.create_collection(
                self.collection,
                vectors_config={
                    bm25.DENSE: models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    bm25.SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
            with warnings.catch_warnings():
                # local mode warns once that payload indexes have no effect there; that is known
                warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
                for name, schema in _payload_indexes().items():
                    self._client.create_payload_index(
                        self.collection, name, field_schema=schema, wait=True
                    )

    def _ensure_themes_collection(self) -> None:
        with self._lock:
            if self._client.collection_exists(self.themes_collection):
                return
            self._client.create_collection(
                self.themes_collection,
                vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
                for name in ("workspace", "kind"):
                    self._client.create_payload_index(
                        self.themes_collection,
                        name,
                        field_schema=models.KeywordIndexParams(
                            type=models.KeywordIndexType.KEYWORD,
                            is_tenant=name == "workspace" or None,
                        ),
                        wait=True,
                    )


def _dense(vector: Any) -> Any:
    """The dense part of a returned vector (named vectors come back as a dict)."""
    return vector.get(bm25.DENSE) if isinstance(vector, dict) else vector


def _payload_indexes() -> dict[str, Any]:
    indexes: dict[str, Any] = {
        name: models.KeywordIndexParams(
            type=models.KeywordIndexType.KEYWORD, is_tenant=name == "workspace" or None
        )
        for name in KEYWORD_FIELDS
    }
    indexes.update({name: models.PayloadSchemaType.FLOAT for name in FLOAT_FIELDS})
    return indexes


def _filter(conditions: list[pl.Condition]) -> models.Filter:
    return models.Filter(must=[_condition(c) for c in conditions])


def _condition(condition: pl.Condition) -> models.FieldCondition:
    if isinstance(condition, pl.Range):
        bounds = models.Range(gte=condition.gte, lt=condition.lt, lte=condition.lte)
        return models.FieldCondition(key=condition.key, range=bounds)
    values = condition.values
    match: models.MatchValue | models.MatchAny = (
        models.MatchValue(value=values[0])
        if len(values) == 1
        else models.MatchAny(any=list(values))  # type: ignore[arg-type]
    )
    return models.FieldCondition(key=condition.key, match=match)
