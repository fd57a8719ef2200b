"""Ingest, import, read and delete feedback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DispatchDep, IngestAuth, ReadAuth, ServiceDep
from feedback_ai.errors import InvalidInput, PayloadTooLarge
from feedback_ai.importers import guess_format, parse_mapping, read_rows
from feedback_ai.schemas import FeedbackOut, ItemError
from feedback_ai.service import Submission

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(description="Feedback items (see FeedbackIn); each validated alone.")


class Accepted(BaseModel):
    job_id: str
    accepted: int = Field(description="Distinct items accepted (and queued).")
    merged: int = Field(
        0,
        description="Valid items that were the same item as another in this request (same "
        "source + external_id, or same text without one): merged, the later one wins.",
    )
    rejected: list[ItemError]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
def ingest(
    batch: FeedbackBatch, principal: IngestAuth, service: ServiceDep, dispatch: DispatchDep
) -> Accepted:
    """Accept a batch: every valid item is stored and processed; invalid ones are listed by
    index and reason. 422 when no item is valid; 413 over the batch limit."""
    limit = service.settings.max_batch_items
    if len(batch.items) > limit:
        raise PayloadTooLarge(f"batch has {len(batch.items)} items; the maximum is {limit}")
    if not batch.items:
        raise InvalidInput("items is empty", {"field": "items"})
    return _accepted(service.submit(principal.workspace, batch.items, dispatch), "item")


@router.post("/import", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
def import_file(
    request: Request,
    principal: IngestAuth,
    service: ServiceDep,
    dispatch: DispatchDep,
    file: Annotated[UploadFile, File(description="CSV (with a header) or JSONL")],
    format: Annotated[str | None, Form(description="csv or jsonl; else from the name")] = None,
    mapping: Annotated[
        str | None, Form(description='JSON: field -> column, e.g. {"text": "review"}')
    ] = None,
    source: Annotated[str | None, Form(description="source for rows without one")] = None,
) -> Accepted:
    """Import a file, read as a stream; row errors are reported by row (CSV) or line (JSONL)."""
    limit = service.settings.max_upload_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + 64 * 1024:
        raise PayloadTooLarge(f"upload is {declared} bytes; the maximum is {limit}")
    fmt = guess_format(file.filename, format)
    rows = read_rows(file.file, fmt, parse_mapping(mapping), source, limit)
    return _accepted(service.submit_rows(principal.workspace, rows, dispatch), "row")


def _accepted(result: Submission, unit: str) -> Accepted:
    if result.job_id is None:  # nothing valid: 422 with every reason
        raise InvalidInput(
            f"no valid {unit} in the request", [e.model_dump() for e in result.rejected]
        )
    return Accepted(
        job_id=result.job_id,
        accepted=result.accepted,
        merged=result.merged,
        rejected=result.rejected,
    )


@router.get("/{item_id}", response_model=FeedbackOut)
def get_feedback(item_id: str, principal: ReadAuth, service: ServiceDep) -> FeedbackOut:
    return service.get(principal.workspace, item_id)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_feedback(item_id: str, principal: IngestAuth, service: ServiceDep) -> None:
    """Remove the item and all its mentions from the store."""
    service.delete(principal.workspace, item_id)
