"""How work reaches the task bodies: over the broker, or in this process.

A dispatcher is called with an ingest batch (`dispatcher(job_id, item_ids)`) and has `refit`
for theme refits and `deliver` for webhook deliveries; both modes run the same task bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from workers.link_tasks import deliver_webhook
from workers.tasks import ingest_batch
from workers.theme_tasks import refit_themes

log = logging.getLogger(__name__)


class CeleryDispatcher:
    """Distributed mode: send the work to the Celery workers through the broker."""

    def __call__(self, job_id: str, item_ids: list[str]) -> None:
        ingest_batch.apply_async(args=(job_id, item_ids))

    def refit(self, job_id: str, workspace: str) -> None:
        refit_themes.apply_async(args=(job_id, workspace))

    def deliver(self, delivery_id: str) -> None:
        deliver_webhook.apply_async(args=(delivery_id,))

    def shutdown(self) -> None:
        pass


class InProcessDispatcher:
    """Embedded mode: run the same Celery task bodies in background threads (no broker).
    Refits have a thread of their own, so a long refit does not hold up ingest, and webhook
    deliveries another (their retries wait in it); deliveries still pending at shutdown stay
    `pending` in the database and are sent again at the next start."""

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        self._themes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="themes")
        self._hooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks")
        self._futures: set[Future[None]] = set()

    def __call__(self, job_id: str, item_ids: list[str]) -> None:
        self._submit(self._pool, ingest_batch, job_id, item_ids)

    def refit(self, job_id: str, workspace: str) -> None:
        self._submit(self._themes, refit_themes, job_id, workspace)

    def deliver(self, delivery_id: str) -> None:
        self._submit(self._hooks, deliver_webhook, delivery_id)

    def _submit(self, pool: ThreadPoolExecutor, task: Any, *args: Any) -> None:
        future = pool.submit(self._run, task.apply, args)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    @staticmethod
    def _run(apply: Callable[..., Any], args: tuple[Any, ...]) -> None:
        result = apply(args=args)
        if result.failed():
            log.error(
                "task %s%r failed: %s", getattr(apply, "__self__", apply), args, result.result
            )

    def drain(self) -> None:
        """Wait until everything sent so far has run (CLI ingest, tests)."""
        while self._futures:
            for future in list(self._futures):
                future.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._themes.shutdown(wait=True, cancel_futures=False)
        self._hooks.shutdown(wait=False, cancel_futures=True)
