"""Job status: ingests and imports (item counts) and refits (stage and progress)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadAuth, ServiceDep, ThemesDep
from feedback_ai.errors import NotFound
from feedback_ai.schemas import JobStatus
from feedback_ai.themes import read
from feedback_ai.themes.schemas import RunStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobStatus | RunStatus)
def get_job(
    job_id: str, principal: ReadAuth, service: ServiceDep, themes: ThemesDep
) -> JobStatus | RunStatus:
    """queued, running, succeeded or failed: an ingest's counts and the reasons items failed,
    or a refit's stage, progress and result."""
    try:
        return service.job_status(principal.workspace, job_id)
    except NotFound:
        return read.run_status(themes, principal.workspace, job_id)
