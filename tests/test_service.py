"""The ingest task body (`FeedbackService.process`) on batches larger than one pipeline part.

Fast fakes stand in for the models; the real worker over Redis is tested in tests/workers."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from feedback_ai.config import Settings, StoreBackend
from feedback_ai.factory import build_service
from feedback_ai.nlp._base import ProcessedText
from feedback_ai.service import PIPELINE_EDGE, PIPELINE_PART, FeedbackService, pipeline_parts
from tests.fakes import HashEmbedder, PassthroughNLP

N = 2 * PIPELINE_PART + 10
PARTS = pipeline_parts(N)  # edge, part, the rest, edge


class FlakyEmbedder(HashEmbedder):
    """Its `fail_on`-th `embed` call (1-based; `process` makes one per part) fails."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.calls, self.fail_on = 0, fail_on

    def embed(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("model went away")
        return super().embed(texts, progress, batch_size)


class HandshakeEmbedder(HashEmbedder):
    """Its first call returns only once the NLP has started on the next part."""

    def __init__(self, next_part_seen: threading.Event) -> None:
        super().__init__()
        self.next_part_seen, self.first = next_part_seen, True

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        if self.first:
            self.first = False
            if not self.next_part_seen.wait(timeout=30):  # a deadlock guard, not a timing test
                raise AssertionError("the next part's NLP did not run while this part embedded")
        return super().embed_batch(texts)


class CountingNLP(PassthroughNLP):
    def __init__(self, second_call: threading.Event | None = None) -> None:
        self.calls, self.second_call = 0, second_call

    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        self.calls += 1
        if self.calls == 2 and self.second_call is not None:
            self.second_call.set()
        return super().process(texts)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[FeedbackService]:
    settings = Settings(
        data_dir=tmp_path,
        store_backend=StoreBackend.qdrant,
        qdrant_url=":memory:",
        task_batch_size=N,
        models_dir=Path("models"),
    )
    svc = build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())
    svc.records.ensure_workspace("default")
    yield svc
    svc.close()


def _submit(service: FeedbackService, items: list[dict[str, str]]) -> tuple[str, list[str]]:
    batches: list[tuple[str, list[str]]] = []
    service.submit("default", items, lambda job, ids: batches.append((job, ids)))
    assert len(batches) == 1
    return batches[0]


def _items(n: int) -> list[dict[str, str]]:  # two mentions each
    return [{"text": f"item {i}: export fails! and it is slow", "external_id": str(i)}
            for i in range(n)]  # fmt: skip


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (0, []),
        (1, [1]),
        (32, [32]),
        (33, [16, 1, 16]),
        (256, [16, 64, 64, 64, 32, 16]),
    ],
)
def test_parts_are_small_at_both_ends(n: int, sizes: list[int]) -> None:
    parts = pipeline_parts(n, part=64, edge=16)
    assert [p.stop - p.start for p in parts] == sizes
    assert [i for p in parts for i in range(n)[p]] == list(range(n))


@pytest.mark.parametrize("n", [1, 2 * PIPELINE_EDGE + 1, 256, 1000])
def test_default_parts_cover_the_batch_in_order(n: int) -> None:
    sizes = [p.stop - p.start for p in pipeline_parts(n)]
    assert sum(sizes) == n and max(sizes) <= max(PIPELINE_PART, 2 * PIPELINE_EDGE)
    if n > 2 * PIPELINE_EDGE:
        assert sizes[0] == sizes[-1] == PIPELINE_EDGE


def test_a_batch_of_several_parts_is_stored_whole(service: FeedbackService) -> None:
    job_id, ids = _submit(service, _items(N))
    service.nlp = CountingNLP()
    assert service.process(job_id, ids)["stored"] == N
    assert service.nlp.calls == len(PARTS) == 4  # type: ignore[attr-defined]
    assert service.store.count("default") == 2 * N  # two mentions per item
    assert service.job_status("default", job_id).counts["stored"] == N


def test_the_next_part_is_redacted_while_this_one_embeds(service: FeedbackService) -> None:
    next_part = threading.Event()
    service.nlp, service.embedder = CountingNLP(next_part), HandshakeEmbedder(next_part)
    job_id, ids = _submit(service, _items(N))
    assert service.process(job_id, ids)["stored"] == N


def test_parts_done_before_a_failure_stay_done_and_a_replay_finishes(
    service: FeedbackService,
) -> None:
    job_id, ids = _submit(service, _items(N))
    done = PARTS[1].stop  # the model fails on the third part
    service.embedder = FlakyEmbedder(fail_on=3)
    with pytest.raises(RuntimeError, match="model went away"):
        service.process(job_id, ids)
    counts = service.job_status("default", job_id).counts
    assert counts["stored"] == done and counts["pending"] == N - done

    assert service.process(job_id, ids)["stored"] == N - done  # the replay
    assert service.job_status("default", job_id).counts["stored"] == N
    assert service.store.count("default") == 2 * N  # deterministic ids: nothing twice


def test_an_item_that_breaks_the_nlp_fails_alone(
    service: FeedbackService,
) -> None:
    items = _items(N)
    items[N // 2]["text"] = "BOOM goes this one"
    job_id, ids = _submit(service, items)
    result = service.process(job_id, ids)
    assert (result["stored"], result["failed"]) == (N - 1, 1)
    job = service.job_status("default", job_id)
    assert job.counts["failed"] == 1 and "cannot process" in job.failed[0]["reason"]


def test_an_update_replaces_its_mentions(service: FeedbackService) -> None:
    job_id, ids = _submit(service, _items(N))
    service.process(job_id, ids)
    updated = [{"text": f"item {i} now one mention", "external_id": str(i)} for i in range(N)]
    job_id, ids = _submit(service, updated)
    assert service.process(job_id, ids)["stored"] == N
    assert service.store.count("default") == N


@pytest.mark.parametrize(("ms", "expected_s"), [(1.0, 0.001), (2.5, 0.0025), (0.0, 0.123)])
def test_building_a_service_sets_the_gil_switch_interval(
    settings: Settings, ms: float, expected_s: float
) -> None:
    """The pipeline's model threads need the GIL back after each ONNX run; 0 keeps the process's."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.123)
    try:
        build_service(
            settings.model_copy(update={"gil_switch_interval_ms": ms}),
            embedder=HashEmbedder(),
            nlp=PassthroughNLP(),
        ).close()
        assert sys.getswitchinterval() == pytest.approx(expected_s)
    finally:
        sys.setswitchinterval(before)
