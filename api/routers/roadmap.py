"""Roadmap items, their theme links and demand; the requesters to tell when one ships."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile, status
from pydantic import ValidationError

from api.deps import AdminAuth, ReadAuth, RoadmapDep
from feedback_ai.errors import InvalidInput, PayloadTooLarge
from feedback_ai.link import schemas as s
from feedback_ai.link.roadmap import MAX_BATCH

router = APIRouter(prefix="/v1/roadmap", tags=["roadmap"])
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _dispatch(request: Request, deliveries: list[str]) -> None:
    for delivery_id in deliveries:
        request.app.state.dispatch.deliver(delivery_id)


@router.post("", response_model=s.Upserted)
def upsert(
    body: s.RoadmapBatch, principal: AdminAuth, roadmap: RoadmapDep, request: Request
) -> s.Upserted:
    """Create or update items by key (idempotent). A status change sends a signed
    `roadmap.status_changed` event to the workspace's webhooks."""
    result, deliveries = roadmap.upsert(principal.workspace, body.items)
    _dispatch(request, deliveries)
    return result


@router.post("/import", response_model=s.Upserted)
def import_items(
    principal: AdminAuth,
    roadmap: RoadmapDep,
    request: Request,
    file: Annotated[
        UploadFile,
        File(
            description="CSV (key,title,description,status,url,tags "
            "with tags separated by ';') or a JSON array"
        ),
    ],
) -> s.Upserted:
    """Bulk upsert from a file (at most 1,000 items, 5 MiB); errors name the row."""
    raw = file.file.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"file is over {MAX_IMPORT_BYTES} bytes")
    rows = _rows(raw, file.filename or "")
    if len(rows) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(rows)} items; the maximum is {MAX_BATCH}")
    items, errors = [], []
    for n, row in rows:
        try:
            items.append(s.RoadmapIn.model_validate(row))
        except ValidationError as exc:
            errors += [
                {"row": n, "field": ".".join(map(str, e["loc"])), "reason": e["msg"]}
                for e in exc.errors()
            ]
    if errors:
        raise InvalidInput(f"{len(errors)} invalid value(s); nothing was imported", errors)
    result, deliveries = roadmap.upsert(principal.workspace, items)
    _dispatch(request, deliveries)
    return result


def _rows(raw: bytes, name: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not valid UTF-8 (byte {exc.start})") from None
    if name.endswith(".json") or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InvalidInput("a JSON import is an array of objects")
        return list(enumerate(data, start=1))
    reader = csv.DictReader(io.StringIO(text))
    out = []
    for n, row in enumerate(reader, start=2):  # row 1 is the header
        if None in row:
            raise InvalidInput(f"row {n} has more cells than the header", {"row": n})
        clean: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        if "tags" in clean:
            clean["tags"] = [t.strip() for t in clean["tags"].split(";") if t.strip()]
        out.append((n, clean))
    return out


@router.get("", response_model=s.RoadmapList)
def list_items(
    principal: ReadAuth,
    roadmap: RoadmapDep,
    sort: Annotated[str, Query(description="demand (ARR, then items) | key | updated")] = "demand",
    status_: Annotated[s.Status | None, Query(alias="status")] = None,
) -> s.RoadmapList:
    """Roadmap items, ranked by the demand behind them by default."""
    return roadmap.list(principal.workspace, sort, status_)


@router.get("/{key}", response_model=s.RoadmapOut)
def get_item(key: str, principal: ReadAuth, roadmap: RoadmapDep) -> s.RoadmapOut:
    """The item, its confirmed, rejected and suggested themes, and the demand behind it."""
    return roadmap.get(principal.workspace, key)


@router.patch("/{key}", response_model=s.RoadmapOut)
def patch_item(
    key: str, body: s.RoadmapPatch, principal: AdminAuth, roadmap: RoadmapDep, request: Request
) -> s.RoadmapOut:
    """Update fields; a status change sends a signed event to the workspace's webhooks."""
    _, deliveries = roadmap.patch(principal.workspace, key, body)
    _dispatch(request, deliveries)
    return roadmap.get(principal.workspace, key)


@router.delete("/{key}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(key: str, principal: AdminAuth, roadmap: RoadmapDep) -> None:
    roadmap.delete(principal.workspace, key)


@router.post("/{key}/themes/{theme_id}", response_model=s.RoadmapOut)
def link_theme(
    key: str, theme_id: str, body: s.LinkIn, principal: AdminAuth, roadmap: RoadmapDep
) -> s.RoadmapOut:
    """Confirm or reject a theme <-> item link; a rejected pair is never suggested again."""
    roadmap.link_theme(principal.workspace, key, theme_id, body.action, principal.name)
    return roadmap.get(principal.workspace, key)


@router.get("/{key}/requesters", response_model=s.Requesters)
def requesters(key: str, principal: ReadAuth, roadmap: RoadmapDep) -> s.Requesters:
    """Accounts and feedback behind the item (via its confirmed themes or linked directly):
    who to tell when it ships."""
    return roadmap.requesters(principal.workspace, key)
