"""`ThemeService`: refits, live assignment at ingest and emerging themes, over one workspace.

Built once per process with its stages injected (records, store, embedder); the Celery tasks and
the embedded queue call the same methods. A refit reads every stored mention vector (nothing is
re-embedded), plans the new registry (`feedback_ai.themes.refit`) and commits it in one
transaction; centroids are written to the store's theme collection before the commit and stale
ones removed after it, so live assignment never sees a theme the registry does not have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import resource
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from feedback_ai.config import Settings
from feedback_ai.embed._base import Embedder
from feedback_ai.errors import Conflict, InvalidInput
from feedback_ai.records import Records
from feedback_ai.records.theme_repo import Event, ThemeRecords
from feedback_ai.store._base import MentionPoint, ThemePoint, VectorStore
from feedback_ai.themes import fit as fitting
from feedback_ai.themes import refit as planner
from feedback_ai.themes.facts import FactsCache
from feedback_ai.themes.labels import LabelNLP
from feedback_ai.themes.rows import by_item, item_rows

log = logging.getLogger(__name__)
ROW_CHUNK = 50_000  # (item, theme) rows a refit builds and writes at a time


class StageClock:
    """Passes progress on and times each stage (wall seconds). `peak_rss_mb`: this process's
    peak resident memory so far at the end of each stage; the stage where it jumps is the one
    that needed the memory."""

    def __init__(self, inner: planner.Progress) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self._stage, self._since = "", time.perf_counter()

    def report(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._close()
            self._stage = stage
        self.inner(stage, done, total)

    def _close(self) -> None:
        now = time.perf_counter()
        if self._stage:
            self.seconds[self._stage] = round(
                self.seconds.get(self._stage, 0.0) + now - self._since, 2
            )
            self.peak_rss_mb[self._stage] = _peak_rss_mb()
        self._since = now

    def done(self) -> dict[str, float]:
        self._close()
        self._stage = ""
        return dict(self.seconds)


def _peak_rss_mb() -> float:
    """Peak resident set of this process: VmHWM on Linux. Not ru_maxrss, which survives exec:
    a CLI started by a big process (a benchmark, a worker) inherits that process's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def new_theme_id() -> str:
    return "th_" + secrets.token_hex(5)


@dataclass
class _Centroids:
    version: int
    ids: list[str]
    matrix: np.ndarray
    threshold: float
    # Merged-away themes' centroids (a person's merge constraints), each standing for the live
    # theme at the end of its merge chain (`ghost_owner`: index into `ids`): feedback like a
    # merged theme joins its target, as refits fold such clusters into it.
    ghosts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    ghost_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per vector: the index into `ids` of its theme (or -1 below the threshold), and its
        similarity to the nearest centroid or merged-away centroid."""
        best, sims = fitting.nearest(vectors, self.matrix, self.threshold)
        if len(self.ghosts):
            ghost, ghost_sims = fitting.nearest(vectors, self.ghosts, self.threshold)
            owner = np.where(ghost >= 0, self.ghost_owner[np.maximum(ghost, 0)], -1)
            closer = ghost_sims > sims
            best, sims = np.where(closer, owner, best), np.maximum(sims, ghost_sims)
        return best, sims


class ThemeService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        store: VectorStore,
        embedder: Embedder,
        components: Callable[[int, int], tuple[Any, Any]] | None = None,
        label_nlp: LabelNLP | None = None,
    ) -> None:
        self.settings = settings
        self.db = ThemeRecords(records)
        self.store = store
        self.embedder = embedder
        self._components = components
        self._label_nlp = label_nlp
        self._cache: dict[str, _Centroids] = {}
        self._lock = threading.Lock()
        self.facts = FactsCache(
            self.db.stamp, self.db.facts, self.db.themes, settings.analytics_max_age_s
        )

    @staticmethod
    def new_id() -> str:
        return new_theme_id()

    @property
    def label_nlp(self) -> LabelNLP:
        if self._label_nlp is None:  # spaCy loads on the first refit, not at start
            self._label_nlp = LabelNLP(self.settings.spacy_model or None)
        return self._label_nlp

    def components(self, n: int, seed: int) -> tuple[Any, Any]:
        if self._components is not None:
            return self._components(n, seed)
        from feedback_ai.themes.cluster import components

        return components(n, seed)

    # --- refit
    def start_refit(self, workspace: str) -> str:
        """Record a queued refit job; one at a time per workspace (Conflict otherwise)."""
        busy = self.db.active_run(workspace, "refit")
        if busy is not None:
            raise Conflict(
                f"a refit of workspace {workspace!r} is already {busy.state}",
                {"job_id": busy.job_id},
            )
        job_id = str(uuid.uuid4())
        self.db.start_run(job_id, workspace, "refit")
        return job_id

    def run_refit(
        self, workspace: str, job_id: str, progress: planner.Progress | None = None
    ) -> dict[str, Any]:
        """The refit task's body: the job's state and progress are kept up to date; bad input
        (too little data) fails the job, other errors propagate (the task retries)."""
        self.db.update_run(job_id, state="running", stage="loading", error=None)
        try:
            result = self.refit(workspace, job_id, progress=progress)
        except InvalidInput as exc:
            self.db.update_run(job_id, state="failed", error=exc.message)
            return {}
        self.db.update_run(job_id, state="succeeded", stage="done", result=result)
        return result

    def fail_run(self, job_id: str, reason: str) -> None:
        self.db.update_run(job_id, state="failed", error=reason)

    def refit(
        self,
        workspace: str,
        job_id: str | None = None,
        actor: str = "refit",
        progress: planner.Progress | None = None,
    ) -> dict:
        """Refit now; progress goes to the job (and to `progress`, e.g. a progress bar).
        The result holds the plan's figures and the seconds each stage took."""
        clock = StageClock(self._progress(job_id, progress))
        progress = clock.report
        started = datetime.now(UTC)
        corpus = self.load(workspace, progress)
        if len(corpus) < self.settings.theme_min_mentions:
            raise InvalidInput(
                f"workspace {workspace!r} has {len(corpus)} stored mentions; a refit needs at "
                f"least {self.settings.theme_min_mentions}",
                {"mentions": len(corpus)},
            )
        options = self.options()
        fit = partial(
            fitting.fit,
            embedder=self.embedder,
            components=self.components,
            sample_size=options.sample_size,
            seed=options.seed,
        )
        p = planner.plan(
            corpus, self.current(workspace), fit, self.label_nlp, new_theme_id, options, progress
        )
        progress("saving", 0, len(p.theme_ids))
        rows = self._rows(workspace, corpus, p, skip=set(self.db.manual(workspace)))
        pool = self._pool(workspace, corpus, p)
        live = [s for s in p.states if s.status in ("active", "noise")]
        self.store.upsert_themes(self._points(workspace, p, live))
        version = self.db.commit(
            workspace,
            actor,
            p.states,
            [*p.events, Event(None, "refit", detail=p.stats)],
            replace_rows=rows,
            pool=pool,
            model=self._model_record(workspace, p),
        )
        self._prune_centroids(workspace, {s.theme_id for s in live})
        self.db.pool_checked(workspace)
        caught_up = self.catch_up(workspace, started)
        seconds = clock.done()
        return {
            "taxonomy_version": version,
            **p.stats,
            "caught_up": caught_up,
            "seconds": seconds,
            "peak_rss_mb": clock.peak_rss_mb,
        }

    def catch_up(self, workspace: str, since: datetime) -> int:
        """Assign again the items stored while a refit ran: those its corpus missed (live
        assignment placed them against the old themes, and the refit's commit replaced every
        refit/live row) and those re-sent with new text (the corpus held their old vectors).
        Returns how many items were assigned again."""
        late = self.db.stored_since(workspace, since)
        self._assign_stored(workspace, late)
        if late:
            log.info(
                "workspace %s: %d items stored during the refit assigned", workspace, len(late)
            )
        return len(late)

    def reassign(self, workspace: str, item_ids: Sequence[str]) -> None:
        """Assign stored items again against the current themes (an edit's `orphans`)."""
        if item_ids:
            counts = self.db.mention_counts(workspace, item_ids)
            self._assign_stored(workspace, list(counts.items()))
            log.info(
                "workspace %s: %d items placed during an edit assigned", workspace, len(counts)
            )

    def _assign_stored(self, workspace: str, items: Sequence[tuple[str, int]]) -> None:
        """Live assignment of stored items, (item id, mention count) pairs, from their vectors."""
        from feedback_ai import ids
        from feedback_ai.store import _payload as pl

        for start in range(0, len(items), 2_000):
            chunk = items[start : start + 2_000]
            point_ids = [ids.mention_id(i, k) for i, n in chunk for k in range(n)]
            found = self.store.retrieve(workspace, point_ids, with_vectors=True)
            points = [pl.to_point(m.id, m.vector, m.payload) for m in found if m.vector is not None]
            if points:
                self._assign(workspace, points)

    def options(self) -> planner.Options:
        s = self.settings
        return planner.Options(
            sample_size=s.theme_fit_sample,
            seed=s.theme_seed,
            match_threshold=s.theme_match_threshold,
            assign_quantile=s.theme_assign_quantile,
            min_mentions=s.theme_min_mentions,
        )

    def load(self, workspace: str, progress: planner.Progress) -> planner.Corpus:
        """Every mention of the workspace from the store, vectors included."""
        total = self.store.count(workspace)
        vectors = np.empty((total, self.store.dim), dtype=np.float32)
        point_ids, item_ids, index, texts, sentiment = [], [], [], [], []
        n = 0
        for page in self.store.scroll(workspace, with_vectors=True, page=2_000):
            if n + len(page) > len(vectors):  # written to while we read
                vectors = np.resize(vectors, (n + len(page), self.store.dim))
            for m in page:
                vectors[n] = m.vector
                n += 1
                point_ids.append(m.id)
                item_ids.append(m.item_id)
                index.append(m.mention_index)
                texts.append(m.text)
                sentiment.append(m.payload.get("sentiment", np.nan))
            progress("loading", n, total)
        return planner.Corpus(
            point_ids=point_ids,
            item_ids=item_ids,
            mention_index=np.asarray(index, dtype=np.int64),
            texts=texts,
            vectors=vectors[:n],
            sentiment=np.asarray(sentiment, dtype=np.float64),
        )

    def current(self, workspace: str) -> planner.Current:
        themes = self.db.themes(workspace)
        members = self.db.members(workspace)
        cents = {t.theme_id: t.vector for t in self.store.list_themes(workspace)}
        known = [
            planner.registry.Known(t.id, cents[t.id], frozenset(members.get(t.id, ())))
            for t in themes
            if t.id in cents
        ]
        ghosts = [
            planner.registry.Ghost(np.asarray(c.data["centroid"], np.float32), c.data["into"])
            for c in self.db.constraints(workspace, "merge")
        ]
        splits = [
            planner.SplitGroup({k: np.asarray(v, np.float32) for k, v in c.data["parts"].items()})
            for c in self.db.constraints(workspace, "split")
        ]
        return planner.Current(
            known=known,
            noise={t.id for t in themes if t.status == "noise"},
            ghosts=ghosts,
            splits=splits,
            manual=self.db.manual(workspace),
        )

    def _rows(
        self, workspace: str, corpus: planner.Corpus, p: planner.Plan, skip: set[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """The refit's rows, `ROW_CHUNK` (item, theme) pairs at a time, built as the commit
        writes them (a list of a million row dicts and their items' fields took gigabytes).
        Items a person placed (`skip`) keep their place: the refit adds no row for them."""
        themes = p.theme_rows.copy()
        themes[[i for i, item in enumerate(corpus.item_ids) if item in skip]] = -1
        grouped = by_item(corpus.item_ids, themes, p.similarity, corpus.sentiment)
        for start in range(0, len(grouped), ROW_CHUNK):
            part = grouped.part(slice(start, start + ROW_CHUNK))
            yield item_rows(workspace, part, p.theme_ids, self.db.item_fields, "refit")

    def _pool(
        self, workspace: str, corpus: planner.Corpus, p: planner.Plan
    ) -> list[dict[str, Any]]:
        rows = np.flatnonzero(p.theme_rows < 0)
        fields = self.db.item_fields(workspace, (corpus.item_ids[i] for i in rows))
        return [
            {
                "workspace_id": workspace,
                "point_id": corpus.point_ids[i],
                "item_id": corpus.item_ids[i],
                "similarity": float(p.similarity[i]),
                "text": corpus.texts[i][:2_000],
                "created_at": fields[corpus.item_ids[i]]["created_at"],
            }
            for i in rows
            if corpus.item_ids[i] in fields
        ]

    def _points(self, workspace: str, p: planner.Plan, live: Sequence[Any]) -> list[ThemePoint]:
        index = {t: i for i, t in enumerate(p.theme_ids)}
        return [
            ThemePoint(workspace, s.theme_id, p.centroids[index[s.theme_id]], s.label, s.status)
            for s in live
        ]

    def _prune_centroids(self, workspace: str, live: set[str]) -> None:
        stale = [t.theme_id for t in self.store.list_themes(workspace) if t.theme_id not in live]
        self.store.delete_themes(workspace, stale)

    def _model_record(self, workspace: str, p: planner.Plan) -> dict[str, Any]:
        """Save the fitted BERTopic model (safetensors) and append its registry record."""
        version = planner.now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        root = self.settings.themes_dir
        root.mkdir(parents=True, exist_ok=True)
        path = root / re.sub(r"[^A-Za-z0-9_.-]", "_", workspace) / version
        embedding = getattr(self.embedder, "name", "model")
        if p.model is not None:
            fitting.save(p.model, path, embedding)
        record = {
            "name": f"themes/{workspace}",
            "version": version,
            "path": str(path),
            "sha256": checksum(path) if path.exists() else None,
            "embedding_model": embedding,
            "embedding_variant": getattr(self.embedder, "variant", "torch"),
            "seed": self.settings.theme_seed,
            "assign_threshold": p.assign_threshold,
            "metrics": p.stats,
        }
        if path.exists():
            (path / "record.json").write_text(dumps(record) + "\n")
        with (root / "registry.jsonl").open("a") as fh:
            fh.write(dumps(record) + "\n")
        return record

    def _progress(self, job_id: str | None, also: planner.Progress | None) -> planner.Progress:
        def report(stage: str, done: int, total: int) -> None:
            if job_id is not None:
                self.db.update_run(job_id, state="running", stage=stage, done=done, total=total)
            if also is not None:
                also(stage, done, total)

        return report

    # --- live assignment (ingest)
    def assign(
        self, points: Sequence[MentionPoint], fields: dict[str, dict[str, Any]] | None = None
    ) -> int:
        """Assign freshly stored mentions to the nearest theme, or to the pool. Returns the
        pool's growth since its last emerging check (0 when nothing new went there).
        `fields`: the items' row fields (`theme_repo.row_fields_of`) when the caller has them
        loaded; otherwise they are read from the records database."""
        by_ws: dict[str, list[MentionPoint]] = {}
        for p in points:
            by_ws.setdefault(p.workspace, []).append(p)
        return max((self._assign(ws, group, fields) for ws, group in by_ws.items()), default=0)

    def forget(self, workspace: str, item_ids: Sequence[str]) -> None:
        self.db.live(workspace, list(item_ids), [], [], manual_too=True)

    def _assign(
        self,
        workspace: str,
        points: list[MentionPoint],
        fields: dict[str, dict[str, Any]] | None = None,
    ) -> int:
        """Optimistic: the cached centroids are used without reading the taxonomy version;
        the write checks it, and if a refit committed meanwhile, the part is assigned again
        against the new centroids."""
        cents = self._cached_centroids(workspace)
        for _ in range(3):
            if cents is None:  # never refitted: the first refit places everything
                return 0
            pooled, growth = self._assign_to(workspace, points, fields, cents)
            if growth is not None:
                return growth if pooled else 0
            cents = self.centroids(workspace)
        raise RuntimeError(f"workspace {workspace}: the taxonomy kept changing during assignment")

    def _assign_to(
        self,
        workspace: str,
        points: list[MentionPoint],
        fields: dict[str, dict[str, Any]] | None,
        cents: _Centroids,
    ) -> tuple[int, int | None]:
        vectors = np.stack([p.vector for p in points]).astype(np.float32)
        best, sims = cents.nearest(vectors)
        scores = [np.nan if p.sentiment is None else p.sentiment for p in points]
        grouped = by_item([p.item_id for p in points], best, sims, scores)
        fields_of = self.db.item_fields if fields is None else lambda _ws, _ids: fields
        rows = item_rows(workspace, grouped, cents.ids, fields_of, "live")
        pool = [
            {
                "workspace_id": workspace,
                "point_id": p.id,
                "item_id": p.item_id,
                "similarity": float(sims[i]),
                "text": p.text[:2_000],
                "created_at": p.created_at,
            }
            for i, p in enumerate(points)
            if best[i] < 0
        ]
        items = sorted({p.item_id for p in points})
        return len(pool), self.db.live(workspace, items, rows, pool, version=cents.version)

    # --- emerging themes
    def detect_emerging(self, workspace: str, actor: str = "emerging") -> list[str]:
        from feedback_ai.themes.emerging import detect

        return detect(self, workspace, actor)

    def centroids(self, workspace: str) -> _Centroids | None:
        """The workspace's live centroids, cached per taxonomy version."""
        version = self.db.taxonomy_version(workspace)
        with self._lock:
            cached = self._cache.get(workspace)
            if cached is not None and cached.version == version:
                return cached if cached.ids else None
        tax = self.db.taxonomy(workspace)
        # Only themes the registry holds live: a refit or merge commits first and removes the
        # old centroids from the store after, and a reload in between must not use them.
        registered = {t.id for t in self.db.themes(workspace)}
        themes = [t for t in self.store.list_themes(workspace) if t.theme_id in registered]
        threshold = float((tax.model or {}).get("assign_threshold", 1.0))
        matrix = np.stack([t.vector for t in themes]) if themes else np.zeros((0, self.store.dim))
        ids_ = [t.theme_id for t in themes]
        fresh = _Centroids(tax.version, ids_, matrix, threshold, *self._ghosts(workspace, ids_))
        with self._lock:
            self._cache[workspace] = fresh
        return fresh if fresh.ids else None

    def _ghosts(self, workspace: str, live: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Centroids of merged-away themes and the index in `live` of the theme each now
        stands for (merge chains followed; a chain that ends outside `live` is left out)."""
        index = {t: i for i, t in enumerate(live)}
        merged = {t.id: t.merged_into for t in self.db.themes(workspace, ("merged",))}
        rows, owners = [], []
        for c in self.db.constraints(workspace, "merge"):
            into, seen = c.data["into"], set()
            while into not in index and merged.get(into) and into not in seen:
                seen.add(into)
                into = merged[into]
            if into in index:
                rows.append(np.asarray(c.data["centroid"], np.float32))
                owners.append(index[into])
        if not rows:
            return np.zeros((0, self.store.dim), np.float32), np.zeros(0, np.int64)
        return np.stack(rows), np.asarray(owners, np.int64)

    def _cached_centroids(self, workspace: str) -> _Centroids | None:
        """The cached centroids if there are any, unchecked (the caller's write checks the
        version); otherwise `centroids` (a workspace without themes gets them at its refit)."""
        with self._lock:
            cached = self._cache.get(workspace)
        if cached is not None and cached.ids:
            return cached
        return self.centroids(workspace)


def checksum(path: Any) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
