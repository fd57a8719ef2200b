"""`MatchService`'s fitted-matcher cache: fits run in the background, one per workspace and kind;
a request waits up to `match_fit_wait_s` for a refit and otherwise answers from the last matcher,
marked stale. Fakes (hashed-word vectors, in-memory Qdrant) and a fit slowed on purpose."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedback_ai.config import Settings, StoreBackend
from feedback_ai.factory import build_service
from feedback_ai.link import schemas as out
from feedback_ai.link.roadmap import RoadmapService
from feedback_ai.link.service import MatchService
from tests.fakes import HashEmbedder, PassthroughNLP

WS = "default"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[MatchService, RoadmapService]]:
    settings = Settings(
        data_dir=tmp_path,
        store_backend=StoreBackend.qdrant,
        qdrant_url=":memory:",
        match_fit_wait_s=0.2,
        match_pool=0,
    )
    svc = build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())
    svc.records.create_key(WS)
    match = MatchService(settings, svc.records, svc.store, svc.embedder)
    roadmap = RoadmapService(settings, svc.records, svc.store, svc.embedder, match)
    yield match, roadmap
    match.close()
    svc.close()


def _item(key: str, title: str) -> out.RoadmapIn:
    return out.RoadmapIn(key=key, title=title)


class Gate:
    """Holds `MatchService._fit_roadmap` until released; counts the fits that ran at once."""

    def __init__(self, match: MatchService) -> None:
        self.release, self.running, self.most, self.calls = threading.Event(), 0, 0, 0
        self._lock, fit = threading.Lock(), match._fit_roadmap

        def held(workspace: str, *stage: Any) -> Any:
            with self._lock:
                self.running, self.calls = self.running + 1, self.calls + 1
                self.most = max(self.most, self.running)
            try:
                self.release.wait(10)
                return fit(workspace, *stage)
            finally:
                with self._lock:
                    self.running -= 1

        match._fit_roadmap = held  # type: ignore[method-assign]


def _roadmap_keys(match: MatchService, text: str) -> tuple[list[str], bool]:
    result = match.match(WS, out.MatchIn(text=text, k=5))
    return [c.id for c in result.roadmap], result.stale


def test_a_refit_slower_than_the_wait_serves_the_last_matcher_marked_stale(
    services: tuple[MatchService, RoadmapService],
) -> None:
    match, roadmap = services
    roadmap.upsert(WS, [_item("PAY-1", "faster card delivery")])
    assert _roadmap_keys(match, "card delivery") == (["PAY-1"], False)  # first fit: awaited

    gate = Gate(match)
    roadmap.upsert(WS, [_item("PAY-2", "live exchange rates")])
    keys, stale = _roadmap_keys(match, "exchange rates")
    assert (keys, stale) == (["PAY-1"], True)  # the refit is held: the last matcher answers
    began = time.monotonic()
    keys, stale = _roadmap_keys(match, "exchange rates")  # a second request shares that refit
    assert stale and gate.calls == 1
    assert time.monotonic() - began < 0.15  # the fit's wait is used up: it answers at once

    gate.release.set()
    match.wait_for_fits()
    keys, stale = _roadmap_keys(match, "exchange rates")
    assert not stale and keys[0] == "PAY-2" and set(keys) == {"PAY-1", "PAY-2"}
    assert gate.most == 1


def test_a_refit_within_the_wait_is_served_fresh(
    services: tuple[MatchService, RoadmapService],
) -> None:
    match, roadmap = services
    roadmap.upsert(WS, [_item("PAY-1", "faster card delivery")])
    _roadmap_keys(match, "card delivery")
    roadmap.upsert(WS, [_item("PAY-2", "live exchange rates")])
    keys, stale = _roadmap_keys(match, "exchange rates")  # a small refit: milliseconds
    assert not stale and keys[0] == "PAY-2"


def test_a_failed_fit_fails_the_request_that_waits_for_it(
    services: tuple[MatchService, RoadmapService],
) -> None:
    match, roadmap = services
    roadmap.upsert(WS, [_item("PAY-1", "faster card delivery")])

    def broken(workspace: str, *stage: Any) -> Any:
        raise RuntimeError("store gone")

    match._fit_roadmap = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="store gone"):
        match.match(WS, out.MatchIn(text="card delivery"))


def test_the_roadmap_matcher_reads_the_stored_texts_and_the_ticket_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pool, the roadmap matcher is fitted with its lexical view on the stored mentions'
    texts, and `match` scores the ticket's text with it. Until that view is fitted, matches
    are served by the fit's first stage (the cosine classifier), marked partial (not stale:
    it has the latest items)."""
    from feedback_ai.link import matcher as matcher_module

    lexical_stage, co_train = threading.Event(), matcher_module.co_train

    def held_co_train(*args: Any) -> Any:
        lexical_stage.wait(10)
        return co_train(*args)

    monkeypatch.setattr(matcher_module, "co_train", held_co_train)
    settings = Settings(data_dir=tmp_path, store_backend=StoreBackend.qdrant, qdrant_url=":memory:")
    svc = build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())
    svc.records.create_key(WS)
    texts = [f"the {w} page is {a}" for w in ("export", "invoice") for a in ("slow", "broken")]
    batches: list[tuple[str, list[str]]] = []
    svc.submit(WS, [{"text": t} for t in texts * 3], lambda job, ids: batches.append((job, ids)))
    for job, ids in batches:
        svc.process(job, ids)
    match = MatchService(settings, svc.records, svc.store, svc.embedder)
    roadmap = RoadmapService(settings, svc.records, svc.store, svc.embedder, match)
    try:
        roadmap.upsert(WS, [_item("EXP-1", "faster export"), _item("INV-1", "invoice fixes")])
        first_answer = match.match(WS, out.MatchIn(text="export is slow", k=5))
        assert first_answer.roadmap[0].id == "EXP-1"  # the first stage answers
        assert first_answer.partial and not first_answer.stale
        first = match.model(WS, "roadmap")[0]
        assert not first.complete and first.matcher and first.matcher.lexical is None
        lexical_stage.set()
        match.wait_for_fits()
        full = match.match(WS, out.MatchIn(text="export is slow", k=5))
        assert full.roadmap[0].id == "EXP-1" and not full.partial and not full.stale
        fitted = match.model(WS, "roadmap")[0].matcher
        assert fitted is not None and fitted.lexical is not None and fitted.pool_used == 4
        seen: list[Any] = []
        scores = fitted.lexical.scores
        fitted.lexical.scores = lambda t: seen.append(list(t)) or scores(t)  # type: ignore[method-assign]
        match.match(WS, out.MatchIn(text="invoice page broken", k=2))
        assert seen == [["invoice page broken"]]
    finally:
        match.close()
        svc.close()
