"""`MatchService`: which known theme and roadmap item is a ticket about, with a calibrated
confidence and a decision; and which past feedback said the same.

Per workspace and kind ("theme", "roadmap") a `Matcher` (`feedback_ai.link.matcher`) is fitted
on demand and cached until its inputs change (taxonomy version, roadmap items, links). Fits run
on a background thread, one at a time per workspace and kind (requests arriving meanwhile share
it). Requests wait for the fit until `match_fit_wait_s` after it started, then answer from the
last fitted matcher, marked `stale` (a workspace's very first fit is always awaited: there is no
last one). A roadmap fit with a pool has two stages: the self-trained cosine classifier, then
its lexical view (`feedback_ai.link.lexical`, most of the time); the first stage is served,
marked `partial`, as soon as it exists, so a first match waits only for that. Small workspaces
refit in milliseconds and always see their latest edits; at 500 roadmap items over a 20k-mention
pool the first stage takes ~10 s and the whole fit ~40 s, and support agents are not kept
waiting for it.
- themes: classes are the live themes, described by their centroids; feedback a person linked
  to a theme is an exemplar (rejected links push away);
- roadmap items: classes are the items, described by their title + description vectors;
  exemplars are the feedback linked to them and the centroids of their confirmed themes; the
  matcher self-trains on up to `match_pool` stored mentions (never their labels: there are none).
A query then costs one matrix product. Confidence comes from the calibrator (default: the one
shipped in models/, fitted on public tuning splits; see `feedback_ai.link.calibration`);
decisions follow `match_matched` / `match_review`. Similar feedback comes from the store's
search; its confidence is P(same need | cosine), calibrated the same way on public data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from feedback_ai import ids
from feedback_ai.config import Settings
from feedback_ai.embed._base import Embedder
from feedback_ai.link import schemas as out
from feedback_ai.link.calibration import (
    Calibrator,
    Thresholds,
    decide,
    load_calibrator,
    rank_features,
)
from feedback_ai.link.lexical import MatcherTexts
from feedback_ai.link.matcher import Matcher, fit_matcher, normalise, roadmap_text
from feedback_ai.records import Records
from feedback_ai.records.link_models import FeedbackLink, RoadmapItem, ThemeLink
from feedback_ai.records.link_repo import LinkRecords
from feedback_ai.records.theme_models import Taxonomy
from feedback_ai.records.theme_repo import ThemeRecords, utc
from feedback_ai.store._base import VectorStore

log = logging.getLogger(__name__)

SIMILAR_PATH = Path(__file__).resolve().parents[2] / "models" / "similar_calibration.json"


@dataclass
class _Model:
    version: tuple[Any, ...]
    ids: list[str]
    labels: list[str]
    matcher: Matcher | None  # None: no classes
    complete: bool = True  # False: a fit's first stage, its lexical view still being fitted


@cache
def similar_calibration(path: Path = SIMILAR_PATH) -> tuple[float, float]:
    """(a, b) of P(same need | cosine) = 1 / (1 + exp(-(a * cosine + b)))."""
    raw = json.loads(Path(path).read_text())
    return float(raw["a"]), float(raw["b"])


class MatchService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        store: VectorStore,
        embedder: Embedder,
        calibrator: Calibrator | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.links = LinkRecords(records)
        self.themes = ThemeRecords(records)
        self.store = store
        self.embedder = embedder
        self._calibrator = calibrator
        self.thresholds = Thresholds(settings.match_matched, settings.match_review)
        self._cache: dict[tuple[str, str], _Model] = {}
        # (started, fit, ready): `ready` is set once the fit has a matcher to serve (its first
        # stage) or has ended, failed included
        self._fits: dict[tuple[str, str], tuple[float, Future[_Model], threading.Event]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="match-fit")

    @property
    def calibrator(self) -> Calibrator:
        if self._calibrator is None:  # read on first use: the API starts without it
            self._calibrator = load_calibrator()
        return self._calibrator

    # --- the support agent's call
    def match(self, workspace: str, req: out.MatchIn) -> out.MatchOut:
        query = np.asarray(self.embedder.embed_query(req.text), dtype=np.float32)
        versions = self._versions(workspace)
        theme_model, theme_stale = self.model(workspace, "theme", versions["theme"])
        roadmap_model, roadmap_stale = self.model(workspace, "roadmap", versions["roadmap"])
        partial = not (theme_model.complete and roadmap_model.complete)
        themes, themes_scope = self._scored(theme_model, query, req.k)
        roadmap, roadmap_scope = self._scored(roadmap_model, query, req.k, req.text)
        best = roadmap[0] if roadmap else (themes[0] if themes else None)
        return out.MatchOut(
            decision=best.decision if best else "no_match",
            thresholds={"matched": self.thresholds.matched, "review": self.thresholds.review},
            stale=theme_stale or roadmap_stale,
            partial=partial,
            in_scope={"themes": themes_scope, "roadmap": roadmap_scope},
            themes=themes,
            roadmap=roadmap,
            feedback=self.similar(workspace, query, req.k),
        )

    def candidates(
        self,
        workspace: str,
        kind: str,
        query: np.ndarray,
        k: int,
        version: tuple[Any, ...] | None = None,
    ) -> list[out.Candidate]:
        return self._candidates(self.model(workspace, kind, version)[0], query, k)

    def _candidates(self, model: _Model, query: np.ndarray, k: int) -> list[out.Candidate]:
        return self._scored(model, query, k)[0]

    def _scored(
        self, model: _Model, query: np.ndarray, k: int, text: str | None = None
    ) -> tuple[list[out.Candidate], float | None]:
        """The candidates, and P(in scope) from the best one's features; the query's `text`
        feeds the matcher's lexical view when it has one."""
        if model.matcher is None:
            return [], None
        result = model.matcher.match(query[None], k, texts=None if text is None else [text])
        features = rank_features(result)
        confidence = self.calibrator.apply(features)
        decisions = decide(confidence, self.thresholds)
        scope = self.calibrator.in_scope(features[:1])
        in_scope = None if scope is None else round(float(scope[0]), 4)
        return [
            out.Candidate(
                id=model.ids[int(c)],
                label=model.labels[int(c)],
                confidence=round(float(p), 4),
                score=round(float(s), 4),
                decision=str(d),  # type: ignore[arg-type]
            )
            for c, s, p, d in zip(
                result.indices[0], result.scores[0], confidence, decisions, strict=True
            )
        ], in_scope

    def similar(self, workspace: str, query: np.ndarray, k: int) -> list[out.SimilarFeedback]:
        a, b = similar_calibration()
        hits, seen = [], set()
        for m in self.store.search(workspace, query, limit=k * 5):
            if m.item_id in seen:
                continue
            seen.add(m.item_id)
            p = 1.0 / (1.0 + np.exp(-(a * m.score + b)))
            hits.append(
                out.SimilarFeedback(
                    id=m.item_id,
                    text=m.text,
                    score=round(m.score, 4),
                    confidence=round(float(p), 4),
                    decision=str(decide(np.array([p]), self.thresholds)[0]),  # type: ignore[arg-type]
                    account_id=m.payload.get("account_id"),
                    created_at=utc(_from_epoch(m.payload["created_at"])),
                )
            )
            if len(hits) == k:
                break
        return hits

    # --- fitted matchers, cached per workspace and kind
    def model(
        self, workspace: str, kind: str, version: tuple[Any, ...] | None = None
    ) -> tuple[_Model, bool]:
        """The matcher of `kind` and whether it is stale: fitted on inputs older than `version`
        (what `_versions` says of them now, read here unless the caller has read it already).
        The matcher may be a fit's first stage (`complete` False: its lexical view is still
        being fitted).

        A changed `version` starts a background fit, unless one is running for this workspace
        and kind already (it is shared); the call waits for it until `match_fit_wait_s` after the
        fit started and otherwise returns the last fitted matcher. A fit with a lexical view
        (roadmap matchers with a pool) serves its first stage, the self-trained cosine
        classifier, as soon as it has it: a workspace's first match waits only for that."""
        version = version if version is not None else self._versions(workspace)[kind]
        key = (workspace, kind)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.version == version and cached.complete:
                return cached, False
            running = self._fits.get(key)
            if running is None or running[1].done():
                ready = threading.Event()
                fit = self._executor.submit(self._fit, workspace, kind, ready)
                fit.add_done_callback(_log_failure)
                fit.add_done_callback(lambda _: ready.set())
                running = (time.monotonic(), fit, ready)
                self._fits[key] = running
        started, fit, ready = running
        # The wait is counted from the fit's start: once one request has waited it out, those
        # that come during the rest of the fit answer from the last matcher at once.
        wait = max(0.0, started + self.settings.match_fit_wait_s - time.monotonic())
        if not ready.wait(timeout=None if cached is None else wait):
            assert cached is not None
            return cached, cached.version != version
        if fit.done():
            fresh = fit.result()  # raises what the fit raised
        else:
            with self._lock:
                fresh = self._cache[key]  # the fit's first stage
        return fresh, fresh.version != version

    def _fit(self, workspace: str, kind: str, ready: threading.Event) -> _Model:
        """Fit on what the records hold now; the version read first, so data changing during the
        fit only makes the result look older than it is (and refit once more). A first stage
        (`complete=False`) is cached and `ready` set as soon as the fit hands it over."""

        def publish(model: _Model) -> None:
            model.version = version
            with self._lock:
                self._cache[(workspace, kind)] = model
            ready.set()

        version = self._versions(workspace)[kind]
        if kind == "theme":
            fresh = self._fit_themes(workspace)
        else:
            fresh = self._fit_roadmap(workspace, publish)
        publish(fresh)
        return fresh

    def wait_for_fits(self) -> None:
        """Block until the background fits started so far are done (tests, benchmarks)."""
        with self._lock:
            fits = [fit for _, fit, _ in self._fits.values()]
        for fit in fits:
            fit.exception()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _versions(self, workspace: str) -> dict[str, tuple[Any, ...]]:
        """What each kind's matcher is fitted from, as counts and latest change times: theme
        matchers on the taxonomy and feedback links to themes; roadmap matchers on the items,
        feedback links to them, theme links and the taxonomy. One session, four queries (each
        match call reads them)."""
        with self.records.session() as s:
            links: dict[str, tuple[int, Any]] = {"theme": (0, None), "roadmap": (0, None)}
            q = select(FeedbackLink.target_kind, func.count(), func.max(FeedbackLink.at))
            for kind, n, at in s.execute(
                q.where(FeedbackLink.workspace_id == workspace).group_by(FeedbackLink.target_kind)
            ):
                links[kind] = (n, at)
            items = s.execute(
                select(func.count(), func.max(RoadmapItem.updated_at)).where(
                    RoadmapItem.workspace_id == workspace
                )
            ).one()
            themes = s.execute(
                select(func.count(), func.max(ThemeLink.at)).where(
                    ThemeLink.workspace_id == workspace
                )
            ).one()
            tax = s.get(Taxonomy, workspace)
        version = tax.version if tax else 0
        return {
            "theme": (version, *links["theme"]),
            "roadmap": (*items, *links["roadmap"], *themes, version),
        }

    def _fit_themes(self, workspace: str) -> _Model:
        live = {t.id: t for t in self.themes.themes(workspace, ("active", "emerging"))}
        points = [p for p in self.store.list_themes(workspace) if p.theme_id in live]
        if not points:
            return _Model((), [], [], None)
        keys = [p.theme_id for p in points]
        desc = np.stack([p.vector for p in points])
        good, bad, _ = self._exemplars(workspace, "theme", keys, desc)
        matcher = fit_matcher(desc, good, None, bad, _no_pool())
        return _Model((), keys, [live[k].label for k in keys], matcher)

    def _fit_roadmap(
        self, workspace: str, first_stage: Callable[[_Model], None] | None = None
    ) -> _Model:
        """The roadmap matcher; `first_stage` gets it before its lexical view is fitted."""
        points = self.store.list_themes(workspace, kind="roadmap")
        items = {i.key: i for i in self.links.items(workspace)}
        titles = {key: i.title for key, i in items.items()}
        points = [p for p in points if p.theme_id in titles]
        if not points:
            return _Model((), [], [], None)
        keys = [p.theme_id for p in points]
        desc = np.stack([p.vector for p in points])
        good, bad, good_texts = self._exemplars(workspace, "roadmap", keys, desc)
        cents = {t.theme_id: t.vector for t in self.store.list_themes(workspace)}
        for i, key in enumerate(keys):
            linked = [
                cents[link.theme_id]
                for link in self.links.theme_links(workspace, key=key)
                if link.state == "confirmed" and link.theme_id in cents
            ]
            if linked:
                good[i] = np.vstack([good[i], *linked])
        pool, pool_texts = self._pool(workspace)
        texts = MatcherTexts(
            [roadmap_text(items[k].title, items[k].description or "") for k in keys],
            good_texts,
            pool_texts,
        )
        labels = [titles[k] for k in keys]

        def dense(m: Matcher) -> None:
            if first_stage is not None:
                first_stage(_Model((), keys, labels, m, complete=False))

        matcher = fit_matcher(desc, good, pool, bad, texts=texts, on_dense=dense)
        return _Model((), keys, labels, matcher)

    def _exemplars(
        self, workspace: str, kind: str, keys: list[str], desc: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[str]]]:
        """Per class: the vectors of feedback a person confirmed (and rejected) for it, of a
        multi-mention item the mention most like the class; and the confirmed ones' texts."""
        index = {k: i for i, k in enumerate(keys)}
        good = [np.zeros((0, desc.shape[1]), np.float32) for _ in keys]
        good_texts: list[list[str]] = [[] for _ in keys]
        bad = [np.zeros((0, desc.shape[1]), np.float32) for _ in keys]
        links = [
            link
            for link in self.links.feedback_links(workspace, kind, state=None)
            if link.target_id in index
        ]
        counts = self.themes.mention_counts(workspace, sorted({link.item_id for link in links}))
        point_ids = [ids.mention_id(i, m) for i, n in counts.items() for m in range(max(n, 1))]
        by_item: dict[str, list[tuple[np.ndarray, str]]] = {}
        for m in self.store.retrieve(workspace, point_ids):
            if m.vector is not None:
                by_item.setdefault(m.item_id, []).append((np.asarray(m.vector, np.float32), m.text))
        for link in links:
            mentions = by_item.get(link.item_id)
            if not mentions:
                continue
            c = index[link.target_id]
            best, text = max(mentions, key=lambda vt: float(vt[0] @ desc[c]))
            target = good if link.state == "confirmed" else bad
            target[c] = np.vstack([target[c], best[None]])
            if link.state == "confirmed":
                good_texts[c].append(text)
        return good, bad, good_texts

    def _pool(self, workspace: str) -> tuple[np.ndarray | None, list[str]]:
        """Up to `match_pool` stored mentions: their vectors and texts, in the same order."""
        cap = self.settings.match_pool
        rows: list[np.ndarray] = []
        texts: list[str] = []
        for page in self.store.scroll(workspace, with_vectors=True, page=2_000):
            for m in page:
                if m.vector is not None:
                    rows.append(np.asarray(m.vector, np.float32))
                    texts.append(m.text)
            if len(rows) >= cap:
                break
        if not rows or not cap:
            return None, []
        return normalise(np.stack(rows[:cap])), texts[:cap]


def _log_failure(fit: Future[_Model]) -> None:
    if not fit.cancelled() and fit.exception() is not None:
        log.error("fitting a matcher failed", exc_info=fit.exception())


def _no_pool() -> Any:
    from feedback_ai.link.matcher import MatcherConfig

    return MatcherConfig(schedule=())


def _from_epoch(value: float) -> Any:
    from feedback_ai.store._payload import from_epoch

    return from_epoch(value)
