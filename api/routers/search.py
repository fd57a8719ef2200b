"""Semantic search of similar requests."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadAuth, ServiceDep
from feedback_ai.schemas import SearchRequest, SearchResult

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResult)
def search(req: SearchRequest, principal: ReadAuth, service: ServiceDep) -> SearchResult:
    """Nearest feedback to the query, grouped by item (best mention first), filtered."""
    return service.search(principal.workspace, req)
