"""A person's word on what a feedback item is about: the exemplars matching learns from."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import AdminAuth, RoadmapDep
from feedback_ai.link import schemas as s

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


class Linked(BaseModel):
    item_id: str
    target_kind: str
    target_id: str
    state: str


@router.post("/{item_id}/links", response_model=Linked)
def link(item_id: str, body: s.FeedbackLinkIn, principal: AdminAuth, roadmap: RoadmapDep) -> Linked:
    """Confirm (or reject) that this feedback is about a roadmap item or belongs to a theme.
    Confirmed links become exemplars for `POST /v1/match` and count in the item's demand."""
    kind, target = roadmap.link_feedback(principal.workspace, item_id, body, principal.name)
    state = "confirmed" if body.action == "confirm" else "rejected"
    return Linked(item_id=item_id, target_kind=kind, target_id=target, state=state)
