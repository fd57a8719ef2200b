"""Celery tasks of the theme layer: refits, emerging-theme checks, the scheduled refit sweep.

Thin like the ingest task: they take ids, call one `ThemeService` method (the service the
ingest tasks use, so one process loads its stages once) and retry with backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from feedback_ai.themes.service import ThemeService
from workers.celery_app import celery_app
from workers.tasks import backoff, get_service

log = logging.getLogger(__name__)
REFIT_RETRIES = 3


def themes() -> ThemeService:
    service = get_service()
    if service.themes is None or not isinstance(service.themes, ThemeService):
        raise RuntimeError("the service was built without a theme layer")
    return service.themes


@celery_app.task(bind=True, name="feedback_ai.refit_themes", acks_late=True, max_retries=None)
def refit_themes(self, job_id: str, workspace: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    ts = themes()
    try:
        return ts.run_refit(workspace, job_id)
    except Exception as exc:
        retries = self.request.retries
        if retries >= REFIT_RETRIES:
            ts.fail_run(job_id, f"gave up after {retries} retries: {type(exc).__name__}: {exc}")
            log.exception("refit %s of %s failed for good", job_id, workspace)
            return {}
        countdown = backoff(retries, base=10.0)
        log.warning("refit %s: retry %d in %.0fs after %r", job_id, retries + 1, countdown, exc)
        if self.request.is_eager:
            time.sleep(countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@celery_app.task(name="feedback_ai.detect_emerging", acks_late=True)
def detect_emerging(workspace: str) -> list[str]:
    """Propose emerging themes from the workspace's pool (idempotent: proposed mentions leave
    the pool, so a replay finds nothing new)."""
    return themes().detect_emerging(workspace)


@celery_app.task(name="feedback_ai.refit_all")
def refit_all() -> list[str]:
    """Celery beat: queue a refit of every workspace with enough stored mentions."""
    ts = themes()
    started = []
    for workspace in ts.db.workspaces():
        if ts.store.count(workspace) < ts.settings.theme_min_mentions:
            continue
        if ts.db.active_run(workspace, "refit") is not None:
            continue
        job_id = ts.start_refit(workspace)
        refit_themes.apply_async(args=(job_id, workspace))
        started.append(job_id)
    return started
