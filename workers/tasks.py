"""Celery tasks: thin, idempotent, retried with exponential backoff.

Each task takes ids, re-fetches what it needs and calls one `FeedbackService` method. A worker
pool process builds its service as it starts and loads its models then (`warm_up`), so its first
batch does not wait for them (importing spaCy and building the pipelines takes seconds of CPU);
the embedded server installs its own with `set_service` so the same task bodies run in its process.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from celery.signals import worker_process_init, worker_ready

from feedback_ai.config import Settings
from feedback_ai.service import FeedbackService
from workers.celery_app import celery_app

log = logging.getLogger(__name__)
_service: FeedbackService | None = None
_service_lock = threading.Lock()  # a threads pool's first tasks must not each open the store


def set_service(service: FeedbackService | None) -> None:
    global _service
    _service = service


def get_service() -> FeedbackService:
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                from feedback_ai.factory import build_service

                _service = build_service(Settings())
    return _service


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Build the service and load its models in a new pool process, before any task arrives.

    A failure is logged, not raised: the first task then builds (or warms) lazily and fails and
    retries as usual, so a broken model or store surfaces on the batches it affects."""
    start = time.perf_counter()
    try:
        get_service().warm_up()
    except Exception:
        log.exception("worker warm-up failed; tasks will load what they need on first use")
    else:
        log.info("worker warm-up done in %.1f s", time.perf_counter() - start)


@worker_ready.connect
def warm_up_in_process(sender: Any = None, **_: Any) -> None:
    """A `threads` or `solo` pool runs tasks in the worker's own process, where no pool process
    starts (`worker_process_init` never fires): warm up there once the worker is ready. Its
    consumer waits meanwhile, as a prefork worker's tasks wait for their pool process."""
    from celery.concurrency.prefork import TaskPool as PreforkPool

    pool = getattr(sender, "pool", None)
    if pool is not None and not isinstance(pool, PreforkPool):
        warm_up()


def backoff(retries: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: up to base * 2**retries seconds, capped."""
    return random.uniform(0, min(cap, base * 2**retries))


@celery_app.task(bind=True, name="feedback_ai.ingest_batch", acks_late=True, max_retries=5)
def ingest_batch(self, job_id: str, item_ids: list[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    try:
        service = get_service()
    except Exception as exc:  # the store or a model cannot be opened (yet): not the batch's fault
        _retry(self, job_id, exc)
    try:
        result = service.process(job_id, item_ids)
    except Exception as exc:
        retries = self.request.retries
        if retries >= service.settings.task_max_retries:
            reason = f"gave up after {retries} retries: {type(exc).__name__}: {exc}"
            service.records.fail_pending(job_id, item_ids, reason)
            log.error("job %s: %s", job_id, reason)
            return {"stored": 0, "failed": len(item_ids)}
        _retry(self, job_id, exc)
    if result.get("pool_growth", 0) >= service.settings.emerging_check_every:
        _check_emerging(service.workspace_of(job_id), eager=bool(self.request.is_eager))
    return result


def _retry(task: Any, job_id: str, exc: Exception) -> NoReturn:
    """Send the task again after a backoff (raises Celery's `Retry`).

    Past Celery's `max_retries` it raises `exc` itself: the batch's items stay pending (nothing
    is marked failed without a service to do it), and `requeue_pending` sends them again later."""
    retries = task.request.retries
    countdown = backoff(retries)
    log.warning("job %s: retry %d in %.1fs after %r", job_id, retries + 1, countdown, exc)
    if task.request.is_eager:  # in-process queue: apply() re-runs at once, so wait here
        time.sleep(countdown)
    raise task.retry(exc=exc, countdown=countdown)


def _check_emerging(workspace: str | None, eager: bool) -> None:
    """The pool grew enough: look for emerging themes (a separate task; inline when eager)."""
    from workers.theme_tasks import detect_emerging

    if workspace is None:
        return
    if eager:
        detect_emerging.apply(args=(workspace,))
    else:
        detect_emerging.apply_async(args=(workspace,))


@celery_app.task(name="feedback_ai.requeue_pending")
def requeue_pending(older_than_s: float = 900.0) -> int:
    """Safety net (Celery beat): re-send batches pending for long, e.g. after the broker lost
    its queue. Replays are harmless: processing is idempotent."""
    service = get_service()
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    batches = service.records.pending_batches(service.settings.task_batch_size, cutoff)
    for job_id, ids in batches:
        ingest_batch.apply_async(args=(job_id, ids))
    return len(batches)
