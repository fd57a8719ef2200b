"""Request-to-feature matching for support agents."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import MatchDep, ReadAuth
from feedback_ai.link import schemas as s

router = APIRouter(prefix="/v1", tags=["match"])


@router.post("/match", response_model=s.MatchOut)
def match(body: s.MatchIn, principal: ReadAuth, service: MatchDep) -> s.MatchOut:
    """A ticket's text -> the top-k known themes, roadmap items and similar past feedback, each
    with a calibrated confidence and a decision (matched / needs_review / no_match)."""
    return service.match(principal.workspace, body)
