"""Job status."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadAuth, ServiceDep
from feedback_ai.schemas import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobStatus)
def get_job(job_id: str, principal: ReadAuth, service: ServiceDep) -> JobStatus:
    """queued, running, succeeded or failed, with counts and the reasons items failed."""
    return service.job_status(principal.workspace, job_id)
