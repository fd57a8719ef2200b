"""The worker's task module without a broker: the pool-process warm-up hook."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from celery.signals import worker_process_init

from feedback_ai.nlp._base import ProcessedText
from feedback_ai.service import FeedbackService
from tests.fakes import HashEmbedder, PassthroughNLP
from workers import tasks


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().embed_batch(texts)


class CountingNLP(PassthroughNLP):
    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail = 0, fail

    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("spaCy model missing")
        return super().process(texts)


@pytest.fixture
def service(fake_service: FeedbackService) -> Iterator[FeedbackService]:
    tasks.set_service(fake_service)
    yield fake_service
    tasks.set_service(None)


def test_a_new_pool_process_loads_the_models_before_any_task(service: FeedbackService) -> None:
    service.nlp, service.embedder = CountingNLP(), CountingEmbedder()
    worker_process_init.send(sender="test")  # what Celery sends in each new pool process
    assert service.nlp.calls == 1  # type: ignore[attr-defined]
    assert len(service.embedder.texts) == 1  # type: ignore[attr-defined]


def test_a_failed_warm_up_is_logged_not_raised(
    service: FeedbackService, caplog: pytest.LogCaptureFixture
) -> None:
    service.nlp = CountingNLP(fail=True)
    tasks.warm_up()
    assert service.nlp.calls == 1  # type: ignore[attr-defined]
    assert "warm-up failed" in caplog.text
    assert tasks.get_service() is service  # kept: the first task uses it (and fails, retries)


def test_threads_starting_at_once_build_one_service(
    fake_service: FeedbackService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threads pool has no pool-process warm-up: its first tasks call `get_service` together,
    and a second service would open the embedded store a second time (which fails)."""
    import feedback_ai.factory

    built: list[int] = []

    def slow_build(_settings: object) -> FeedbackService:
        built.append(1)
        time.sleep(0.05)
        return fake_service

    monkeypatch.setattr(feedback_ai.factory, "build_service", slow_build)
    tasks.set_service(None)
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda _: tasks.get_service(), range(4)))
    finally:
        tasks.set_service(None)
    assert len(built) == 1 and all(s is fake_service for s in got)
