"""The FastAPI app factory. `lifespan` loads the model and opens the store once per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import errors
from api.routers import feedback, health, jobs, links, match, roadmap, search, themes, webhooks
from feedback_ai import __version__
from feedback_ai.config import Mode, Settings
from feedback_ai.factory import bootstrap, build_service, default_key_path
from feedback_ai.link.roadmap import RoadmapService
from feedback_ai.link.service import MatchService
from feedback_ai.service import Dispatch, FeedbackService

log = logging.getLogger("feedback_ai.api")


def _dispatcher(settings: Settings) -> Any:
    from workers.dispatch import CeleryDispatcher, InProcessDispatcher

    if settings.mode == Mode.embedded:
        return InProcessDispatcher(settings.embedded_workers)
    return CeleryDispatcher()


def _broker_ready() -> bool:
    from workers.celery_app import celery_app

    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return True


def _announce(settings: Settings, service: FeedbackService) -> None:
    key = bootstrap(settings, service.records)
    if key:
        log.warning(
            "Created workspace 'default' with an admin API key: %s (also saved in %s). "
            "Send it as 'Authorization: Bearer <key>'.",
            key,
            default_key_path(settings),
        )
    if not settings.auth:
        log.warning("!" * 72)
        log.warning("AUTH IS OFF (FEEDBACK_AI_AUTH=false): anyone reaching this port is admin")
        log.warning("!" * 72)


def create_app(
    settings: Settings | None = None,
    service: FeedbackService | None = None,
    dispatch: Dispatch | None = None,
) -> FastAPI:
    """Build the app. Tests pass a prebuilt `service` and `dispatch`; the server builds both."""
    settings = settings or (service.settings if service else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from workers.tasks import set_service

        own = service is None
        svc = service or build_service(settings)
        set_service(svc)
        own_disp: Any = None if dispatch is not None else _dispatcher(settings)
        disp: Dispatch = dispatch if dispatch is not None else own_disp
        _announce(settings, svc)
        app.state.service, app.state.dispatch = svc, disp
        app.state.themes = svc.themes
        app.state.match = MatchService(settings, svc.records, svc.store, svc.embedder)
        app.state.roadmap = RoadmapService(
            settings, svc.records, svc.store, svc.embedder, app.state.match
        )
        app.state.readiness = {
            "records": svc.records.ready,
            "store": svc.store.ready,
            "model": lambda: svc.embedder.dim > 0,
        }
        if settings.mode == Mode.distributed and dispatch is None:
            app.state.readiness["broker"] = _broker_ready
        if settings.mode == Mode.embedded and dispatch is None:  # resume what a crash left
            for job_id, ids in svc.records.pending_batches(settings.task_batch_size):
                disp(job_id, ids)
            for delivery_id in app.state.roadmap.db.pending_deliveries():
                own_disp.deliver(delivery_id)
        try:
            yield
        finally:
            if own_disp is not None:
                own_disp.shutdown()
            app.state.match.close()  # its background fits read the store: before svc.close()
            set_service(None)
            if own:
                svc.close()

    app = FastAPI(
        title="feedback_ai",
        version=__version__,
        description="Feedback intelligence: ingest, search and match customer feedback.",
        lifespan=lifespan,
    )
    errors.install(app)
    routers = (health, feedback, links, jobs, search, themes, roadmap, match, webhooks)
    for module in routers:
        app.include_router(module.router)
    return app
