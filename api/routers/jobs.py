"""Job status: ingests and imports (item counts) and refits (stage and progress).

`?wait=S` long-polls: the request returns as soon as the job has finished (succeeded or failed),
or after S seconds with its status then, so a client that waits on a job needs one request where
it would otherwise poll many times.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import ReadAuth, ServiceDep, ThemesDep
from feedback_ai.errors import NotFound
from feedback_ai.schemas import JobStatus
from feedback_ai.service import FeedbackService
from feedback_ai.themes import read
from feedback_ai.themes.schemas import RunStatus
from feedback_ai.themes.service import ThemeService

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_WAIT_S = 60.0
POLL_S = 0.1  # how often a long-poll re-reads the job while it waits
DONE = ("succeeded", "failed")


def _status(
    service: FeedbackService, themes: ThemeService, workspace: str, job_id: str
) -> JobStatus | RunStatus:
    try:
        return service.job_status(workspace, job_id)
    except NotFound:
        return read.run_status(themes, workspace, job_id)


@router.get("/{job_id}", response_model=JobStatus | RunStatus)
async def get_job(
    job_id: str,
    request: Request,
    principal: ReadAuth,
    service: ServiceDep,
    themes: ThemesDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="Seconds to wait for the job to finish before answering (0 to 60; "
            "default 0: answer at once). Returns as soon as it succeeds or fails.",
        ),
    ] = 0,
) -> JobStatus | RunStatus:
    """queued, running, succeeded or failed: an ingest's counts and the reasons items failed,
    or a refit's stage, progress and result."""
    deadline = time.monotonic() + wait
    while True:
        status = await run_in_threadpool(_status, service, themes, principal.workspace, job_id)
        left = deadline - time.monotonic()
        if status.status in DONE or left <= 0 or await request.is_disconnected():
            return status
        await asyncio.sleep(min(POLL_S, left))
