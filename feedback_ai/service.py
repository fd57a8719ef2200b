"""The pipeline as one service: accept → (nlp → embed → store) → search, read, delete.

`FeedbackService` is built once per process (see `feedback_ai.factory`) with its stages injected.
`process()` is the body of the ingest task: the Celery worker and the embedded in-process queue
both call it, so both modes run the same code.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from feedback_ai import ids
from feedback_ai.config import Settings
from feedback_ai.embed._base import Embedder
from feedback_ai.errors import InvalidInput
from feedback_ai.importers import Row
from feedback_ai.nlp._base import ProcessedText, TextProcessor
from feedback_ai.nlp.sentiment import SentimentScorer
from feedback_ai.records import ProcessedItem, Records
from feedback_ai.records.models import Item
from feedback_ai.records.theme_repo import row_fields_of
from feedback_ai.schemas import (
    FeedbackIn,
    FeedbackOut,
    Filters,
    ItemError,
    JobStatus,
    MentionHit,
    SearchHit,
    SearchRequest,
    SearchResult,
    validate_items,
)
from feedback_ai.store._base import MentionPoint, ScoredMention, SearchFilter, VectorStore
from feedback_ai.themes.service import ThemeService

log = logging.getLogger(__name__)

Dispatch = Callable[[str, list[str]], None]  # (job_id, item_ids) -> enqueue


# How `FeedbackService.process` cuts a batch into parts. While the model embeds one part, the task
# redacts the next and stores the one before; what it cannot overlap is the first part's NLP and
# the last part's storing, hence small parts at both ends. Parts between are bigger: the model
# pads less in bigger batches, and the ONNX embedder deals a part out to one lane per CPU. Each
# part goes to the model as one batch (`PIPELINE_EMBED_BATCH` texts, up to 2 mentions an item),
# not in batches of `embed_batch_size`: a model run has a fixed cost (~0.7 ms) and short runs cost
# more per token. Parts of 256 in one batch, with task messages of 1,000 items, took bench_ingest
# from 0.573 to 0.658 of raw on a 2-core AVX2 EPYC (0.533 -> 0.691 on an Intel Xeon); parts of
# 512 from 0.617 to 0.645 (means of 8 and 4 runs) on a 2-core AMX Xeon, where the model is ~4x
# faster and the rest of the pipeline weighs more.
PIPELINE_PART = 512
PIPELINE_EDGE = 16
PIPELINE_EMBED_BATCH = 1024


def pipeline_parts(n: int, part: int = PIPELINE_PART, edge: int = PIPELINE_EDGE) -> list[slice]:
    """`edge` items first and last, `part` items each between (the one before last may be
    shorter); a batch of up to 2 x `edge` items is one part."""
    if n <= 2 * edge:
        return [slice(0, n)] if n else []
    cuts = [0, edge]
    while n - edge - cuts[-1] > part:
        cuts.append(cuts[-1] + part)
    cuts += [n - edge, n]
    return [slice(start, end) for start, end in itertools.pairwise(cuts)]


@dataclass(frozen=True)
class _Part:
    """A part of a batch between the two stages: processed text, and its vectors to come."""

    ok: list[tuple[Item, ProcessedText]]  # items whose text processing succeeded
    failures: dict[str, str]  # item id -> reason
    scores: Sequence[float | None]  # sentiment per mention, in mention order
    vectors: Future[np.ndarray]  # one row per mention, in mention order


@dataclass(frozen=True)
class Submission:
    job_id: str | None  # None when nothing was valid
    accepted: int  # distinct items written
    rejected: list[ItemError]
    merged: int = 0  # valid items that were the same item as another of the batch (same id)


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    part: list[Row] = []
    for row in rows:
        part.append(row)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FeedbackService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        store: VectorStore,
        embedder: Embedder,
        nlp: TextProcessor,
        sentiment: SentimentScorer | None = None,
        themes: ThemeService | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.store = store
        self.embedder = embedder
        self.nlp = nlp
        self.sentiment = sentiment
        self.themes = themes  # live assignment of stored mentions to themes (or the pool)

    # --- ingest (API side): validate, persist, plan batches
    def submit(self, workspace: str, raw_items: list[Any], dispatch: Dispatch) -> Submission:
        """Validate a JSON batch item by item, persist the valid ones, send them to the queue."""
        valid, rejected = validate_items(enumerate(raw_items), self.settings)
        items = [item for _, item in valid]
        if not items:
            return Submission(None, 0, rejected)
        job_id, accepted = self._accept(workspace, items, rejected, "ingest", None, dispatch)
        return Submission(job_id, accepted, rejected, merged=len(items) - accepted)

    def submit_rows(
        self, workspace: str, rows: Iterable[Row], dispatch: Dispatch, chunk: int = 1000
    ) -> Submission:
        """A streamed upload: accept chunk by chunk into one job; errors are by row number."""
        job_id: str | None = None
        accepted, merged, rejected_all = 0, 0, []
        seen: dict[tuple[str, str], int] = {}
        for part in _chunks(rows, chunk):
            rejected = [ItemError(index=n, reason=err) for n, rec, err in part if rec is None]
            good = [(n, rec) for n, rec, _ in part if rec is not None]
            valid, invalid = validate_items(good, self.settings, seen)
            rejected = sorted([*rejected, *invalid], key=lambda e: e.index)
            rejected_all.extend(rejected)
            items = [item for _, item in valid]
            if items:
                job_id, n = self._accept(workspace, items, rejected, "import", job_id, dispatch)
                accepted, merged = accepted + n, merged + len(items) - n
            elif job_id is not None:
                self.records.add_rejections(job_id, workspace, "import", rejected)
        return Submission(job_id, accepted, rejected_all, merged)

    def _accept(
        self,
        workspace: str,
        items: Sequence[FeedbackIn],
        rejected: list[ItemError],
        kind: str,
        job_id: str | None,
        dispatch: Dispatch,
    ) -> tuple[str, int]:
        job_id, item_ids = self.records.accept(
            workspace, items, rejected, kind, self.settings.keep_original_text, job_id
        )
        size = self.settings.task_batch_size
        for start in range(0, len(item_ids), size):
            dispatch(job_id, item_ids[start : start + size])
        return job_id, len(item_ids)

    # --- ingest (worker side): the task body
    def warm_up(self) -> None:
        """Load what the task body loads lazily (spaCy, the model's first run, the sentiment
        lexicon) ahead of work."""
        texts = self.nlp.process(["Warm-up: the export to PDF fails since the update."])[0].mentions
        self.embedder.embed(texts)
        if self.sentiment:
            self.sentiment.score(texts)

    def process(self, job_id: str, item_ids: Sequence[str]) -> dict[str, int]:
        """Redact, split, embed and store a batch. Safe to repeat: ids are deterministic and
        items already done for this job are skipped. Raises on transient failures (retry).

        A two-stage pipeline over parts (`pipeline_parts`): while one thread embeds a part (ONNX
        Runtime computes without the GIL), this one redacts the next part and stores the one
        before, so the model is not kept waiting by the NLP, the store and the records
        database. Each part is marked stored once its points are written: after a failure, the
        retry re-fetches only what is still pending."""
        items = self.records.items_to_process(job_id, item_ids)
        totals = {"stored": 0, "failed": 0}
        model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        try:
            previous: _Part | None = None
            for span in pipeline_parts(len(items)):
                part = self._prepare(items[span], model)
                if previous is not None:
                    self._finish(job_id, previous, totals)
                previous = part
            if previous is not None:
                self._finish(job_id, previous, totals)
        finally:
            model.shutdown(wait=True, cancel_futures=True)
        return totals

    def _prepare(self, items: list[Item], model: ThreadPoolExecutor) -> _Part:
        """NLP on this thread, then the part's mentions go to the model's thread."""
        processed, failures = self._nlp(items)
        ok = [(item, p) for item, p in zip(items, processed, strict=True) if p is not None]
        texts = [m for _, p in ok for m in p.mentions]
        scores: Sequence[float | None] = [None] * len(texts)
        if self.sentiment:
            scores = self.sentiment.score(texts)
        vectors = model.submit(self.embedder.embed, texts, None, PIPELINE_EMBED_BATCH)
        return _Part(ok, failures, scores, vectors)

    def _finish(self, job_id: str, part: _Part, totals: dict[str, int]) -> None:
        """Wait for the part's vectors, write its points, assign themes, mark its items."""
        vectors = part.vectors.result()
        points, cursor = [], 0
        for item, p in part.ok:
            span = slice(cursor, cursor + len(p.mentions))
            points.extend(self._points(item, p, vectors[span], part.scores[span]))
            cursor += len(p.mentions)
        self._replace_mentions([item for item, _ in part.ok], points)
        if self.themes and points:  # the pool's size past its last check: the latest counts
            fields = row_fields_of(item for item, _ in part.ok)
            totals["pool_growth"] = self.themes.assign(points, fields)
        done = [ProcessedItem(i.id, p.text, len(p.mentions), p.pii) for i, p in part.ok]
        self.records.mark_stored(job_id, done, keep_raw=not self.settings.redact_pii)
        if part.failures:
            self.records.mark_failed(job_id, part.failures)
        totals["stored"] += len(done)
        totals["failed"] += len(part.failures)

    def workspace_of(self, job_id: str) -> str | None:
        return self.records.job_workspace(job_id)

    def _nlp(self, items: list[Item]) -> tuple[list[ProcessedText | None], dict[str, str]]:
        try:
            return list(self.nlp.process([i.text for i in items])), {}
        except Exception:  # isolate the item that breaks the batch; fail only that one
            log.exception("nlp failed on a batch of %d; retrying item by item", len(items))
        out: list[ProcessedText | None] = []
        failures: dict[str, str] = {}
        for item in items:
            try:
                out.append(self.nlp.process([item.text])[0])
            except Exception as exc:
                out.append(None)
                failures[item.id] = f"text processing failed: {type(exc).__name__}: {exc}"
        return out, failures

    def _points(
        self, item: Item, p: ProcessedText, vectors: np.ndarray, scores: Sequence[float | None]
    ) -> list[MentionPoint]:
        return [
            MentionPoint(
                id=ids.mention_id(item.id, index),
                vector=vectors[index],
                workspace=item.workspace_id,
                item_id=item.id,
                mention_index=index,
                text=text,
                source=item.source,
                created_at=as_utc(item.created_at),
                account_id=item.account_id,
                segment=item.segment,
                rating=item.rating,
                rating_scale=item.rating_scale,
                metadata=item.meta or {},
                sentiment=scores[index],
            )
            for index, text in enumerate(p.mentions)
        ]

    def _replace_mentions(self, items: list[Item], points: list[MentionPoint]) -> None:
        """Drop an updated item's old mentions (their number may change), then upsert."""
        by_ws: dict[str, list[str]] = {}
        for item in items:
            if item.mention_count:  # was stored before: this is an update
                by_ws.setdefault(item.workspace_id, []).append(item.id)
        for workspace, item_ids in by_ws.items():
            self.store.delete_items(workspace, item_ids)
        if points:
            self.store.upsert(points)

    # --- search
    def search(self, workspace: str, req: SearchRequest) -> SearchResult:
        if req.k > self.settings.max_search_k:
            raise InvalidInput(
                f"k is {req.k}; the maximum is {self.settings.max_search_k}", {"field": "k"}
            )
        vector = self.embedder.embed_query(req.query)
        limit = min(req.k * 5, 500)  # over-fetch mentions so k distinct items survive grouping
        hybrid = req.mode == "hybrid"
        found = self.store.search(
            workspace,
            vector,
            limit,
            to_store_filter(req.filters),
            with_vectors=req.collapse_duplicates or hybrid,
            text=req.query if hybrid else None,
        )
        if hybrid:  # keep the fused order, report the cosine similarity as the score
            found = [replace(m, score=_cosine(m.vector, vector)) for m in found]
        groups = group_by_item(found)
        if req.collapse_duplicates:
            hits = collapse(groups, req.collapse_threshold)
        else:
            hits = [_hit(g) for g in groups[: req.k]]  # only the page (collapsing needs them all)
        return SearchResult(query=req.query, hits=hits[: req.k])

    # --- reads and deletes
    def get(self, workspace: str, item_id: str) -> FeedbackOut:
        item = self.records.get_item(workspace, item_id)
        mentions = [
            MentionHit(index=m.mention_index, text=m.text, score=1.0)
            for m in self.store.mentions_of(workspace, item_id)
        ]
        return FeedbackOut(
            id=item.id,
            text=item.text,
            source=item.source,
            external_id=item.external_id,
            created_at=as_utc(item.created_at),
            account_id=item.account_id,
            segment=item.segment,
            revenue=item.revenue,
            rating=item.rating,
            rating_scale=item.rating_scale,
            language=item.language,
            metadata=item.meta or {},
            status=item.status,
            error=item.error,
            mention_count=item.mention_count,
            mentions=mentions,
            pii_redacted=item.pii or {},
        )

    def delete(self, workspace: str, item_id: str) -> None:
        self.records.get_item(workspace, item_id)  # 404 before touching the store
        self.store.delete_items(workspace, [item_id])
        if self.themes is not None:
            self.themes.forget(workspace, [item_id])
        self.records.delete_item(workspace, item_id)

    def job_status(self, workspace: str, job_id: str) -> JobStatus:
        job, counts, failed = self.records.job(workspace, job_id)
        pending = counts.get("pending", 0)
        stored, n_failed = counts.get("stored", 0), counts.get("failed", 0)
        if pending and not (stored or n_failed):
            status = "queued"
        elif pending:
            status = "running"
        elif stored == 0 and n_failed:
            status = "failed"
        else:
            status = "succeeded"
        return JobStatus(
            job_id=job.id,
            status=status,
            kind=job.kind,
            created_at=as_utc(job.created_at),
            counts={
                "accepted": job.accepted,
                "rejected": len(job.rejected),
                "pending": pending,
                "stored": stored,
                "failed": n_failed,
            },
            rejected=[ItemError(**e) for e in job.rejected],
            failed=failed,
        )

    def close(self) -> None:
        self.store.flush()
        self.store.close()
        self.records.engine.dispose()


def to_store_filter(f: Filters | None) -> SearchFilter | None:
    if f is None:
        return None

    def listify(v: list[str] | str | None) -> list[str] | None:
        return [v] if isinstance(v, str) else v

    return SearchFilter(
        source=listify(f.source),
        account_id=listify(f.account_id),
        segment=listify(f.segment),
        created_from=f.created_from,
        created_to=f.created_to,
        rating_min=f.rating_min,
        rating_max=f.rating_max,
        metadata=f.metadata,
    )


def _cosine(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None:  # the store returns vectors when asked; guard the contract anyway
        raise RuntimeError("hybrid search needs the mention vectors")
    return float(np.dot(a, b))


def group_by_item(found: list[ScoredMention]) -> list[list[ScoredMention]]:
    """Group mention hits by their item, keeping best-first order of each item's best mention."""
    groups: dict[str, list[ScoredMention]] = {}
    for m in found:
        groups.setdefault(m.item_id, []).append(m)
    return list(groups.values())


def collapse(groups: list[list[ScoredMention]], threshold: float) -> list[SearchHit]:
    """Greedy: a hit whose best mention is within `threshold` cosine of a kept hit folds into it."""
    kept: list[tuple[SearchHit, np.ndarray]] = []
    for group in groups:
        best = group[0]
        vec = best.vector
        for hit, kept_vec in kept:
            if vec is not None and float(np.dot(vec, kept_vec)) >= threshold:
                hit.duplicate_count += 1
                hit.duplicate_ids.append(best.item_id)
                break
        else:
            kept.append((_hit(group), vec if vec is not None else np.zeros(1)))
    return [hit for hit, _ in kept]


def _hit(group: list[ScoredMention]) -> SearchHit:
    best, p = group[0], group[0].payload
    return SearchHit(
        id=best.item_id,
        score=best.score,
        text=best.text,
        source=p["source"],
        created_at=datetime.fromtimestamp(p["created_at"], UTC),
        account_id=p.get("account_id"),
        segment=p.get("segment"),
        rating=p.get("rating"),
        rating_scale=p.get("rating_scale"),
        metadata=p.get("metadata") or {},
        mentions=[MentionHit(index=m.mention_index, text=m.text, score=m.score) for m in group],
    )
