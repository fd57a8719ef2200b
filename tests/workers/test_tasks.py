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


def _queued(service: FeedbackService, texts: list[str]) -> tuple[str, list[str]]:
    """Accept items without running them: (job id, item ids) as the API would send them."""
    sent: list[tuple[str, list[str]]] = []
    service.records.create_key("default")  # creates the workspace
    items = [{"text": t} for t in texts]
    service.submit("default", items, lambda job, ids: sent.append((job, ids)))
    [(job_id, item_ids)] = sent
    return job_id, item_ids


def test_a_service_that_cannot_be_built_yet_is_retried_not_failed(
    fake_service: FeedbackService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the store or loading a model failing (another process holds the store, a model
    file missing for a moment) is retried like any transient failure; before, the task raised
    outside its retry path and the batch stayed pending with no retry."""
    job_id, item_ids = _queued(fake_service, ["export keeps failing", "add dark mode"])
    attempts: list[int] = []

    def flaky() -> FeedbackService:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the edge shard is open elsewhere")
        return fake_service

    monkeypatch.setattr(tasks, "get_service", flaky)
    monkeypatch.setattr(tasks, "backoff", lambda retries: 0.0)
    result = tasks.ingest_batch.apply(args=(job_id, item_ids))
    assert result.successful(), result.traceback
    assert len(attempts) == 2
    assert fake_service.job_status("default", job_id).counts["stored"] == 2


def test_a_batch_that_keeps_failing_is_marked_failed_after_the_retries(
    service: FeedbackService, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, item_ids = _queued(service, ["export keeps failing"])
    service.settings = service.settings.model_copy(update={"task_max_retries": 2})
    calls: list[int] = []

    def broken(*_: object) -> dict[str, int]:
        calls.append(1)
        raise OSError("disk full")

    monkeypatch.setattr(service, "process", broken)
    monkeypatch.setattr(tasks, "backoff", lambda retries: 0.0)
    tasks.ingest_batch.apply(args=(job_id, item_ids))
    assert len(calls) == 3  # the first run and 2 retries
    status = service.job_status("default", job_id)
    assert status.status == "failed" and status.counts["failed"] == 1
    assert "gave up after 2 retries: OSError: disk full" in status.failed[0]["reason"]


def test_a_worker_registers_every_task_the_api_and_beat_send() -> None:
    """A worker knows only the tasks of the modules the Celery app includes: one left out
    (the webhook tasks once were) makes its messages fail as unregistered in distributed mode,
    while the in-process dispatcher, which imports the tasks itself, works."""
    import subprocess
    import sys

    import workers.dispatch  # noqa: F401  (imports every task module, as the API does)
    from workers.celery_app import celery_app

    sent = {name for name in celery_app.tasks if name.startswith("feedback_ai.")}
    sent |= {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    code = (
        "from workers.celery_app import celery_app as app; app.loader.import_default_modules(); "
        "print(' '.join(n for n in app.tasks if n.startswith('feedback_ai.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    registered = set(out.stdout.split())
    assert {"feedback_ai.deliver_webhook", "feedback_ai.ingest_batch"} <= sent
    assert sent <= registered, sorted(sent - registered)
