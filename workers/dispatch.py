"""How accepted batches reach the task body: over the broker, or in this process."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from workers.tasks import ingest_batch

log = logging.getLogger(__name__)


class CeleryDispatcher:
    """Distributed mode: send the batch to the Celery workers through the broker."""

    def __call__(self, job_id: str, item_ids: list[str]) -> None:
        ingest_batch.apply_async(args=(job_id, item_ids))

    def shutdown(self) -> None:
        pass


class InProcessDispatcher:
    """Embedded mode: run the same Celery task body in a background thread (no broker)."""

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        self._futures: set[Future[None]] = set()

    def __call__(self, job_id: str, item_ids: list[str]) -> None:
        future = self._pool.submit(self._run, job_id, item_ids)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    @staticmethod
    def _run(job_id: str, item_ids: list[str]) -> None:
        result = ingest_batch.apply(args=(job_id, item_ids))
        if result.failed():
            log.error("job %s: batch failed: %s", job_id, result.result)

    def drain(self) -> None:
        """Wait until every batch sent so far has run (CLI ingest, tests)."""
        while self._futures:
            for future in list(self._futures):
                future.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
