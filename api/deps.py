"""Dependencies: the service, the dispatcher and the caller's workspace (from its API key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from feedback_ai.errors import Forbidden, Unauthenticated
from feedback_ai.link.roadmap import RoadmapService
from feedback_ai.link.service import MatchService
from feedback_ai.records import SCOPES, Principal
from feedback_ai.service import Dispatch, FeedbackService
from feedback_ai.themes.service import ThemeService

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_service(request: Request) -> FeedbackService:
    return request.app.state.service  # type: ignore[no-any-return]


def get_dispatch(request: Request) -> Dispatch:
    return request.app.state.dispatch  # type: ignore[no-any-return]


def get_themes(request: Request) -> ThemeService:
    return request.app.state.themes  # type: ignore[no-any-return]


ServiceDep = Annotated[FeedbackService, Depends(get_service)]
ThemesDep = Annotated[ThemeService, Depends(get_themes)]


def get_roadmap(request: Request) -> RoadmapService:
    return request.app.state.roadmap  # type: ignore[no-any-return]


RoadmapDep = Annotated[RoadmapService, Depends(get_roadmap)]


def get_match(request: Request) -> MatchService:
    return request.app.state.match  # type: ignore[no-any-return]


MatchDep = Annotated[MatchService, Depends(get_match)]
DispatchDep = Annotated[Dispatch, Depends(get_dispatch)]


def _principal(
    service: ServiceDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if not service.settings.auth:
        return Principal("default", frozenset(SCOPES), "no-auth")
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    principal = service.records.authenticate(creds.credentials)
    if principal is None:
        raise Unauthenticated("unknown API key")
    return principal


def require(scope: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(
                f"this key lacks the '{scope}' scope",
                {"needed": scope, "has": sorted(principal.scopes)},
            )
        return principal

    return check


IngestAuth = Annotated[Principal, Depends(require("ingest"))]
ReadAuth = Annotated[Principal, Depends(require("read"))]
AdminAuth = Annotated[Principal, Depends(require("admin"))]
