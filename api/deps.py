"""Dependencies: the service, the dispatcher and the caller's workspace (from its API key).

All are `async`: FastAPI runs a sync dependency on the thread pool, one hop each, and these do no
blocking work (a key lookup that misses the cache is sent to the pool itself)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from feedback_ai.errors import Forbidden, Unauthenticated
from feedback_ai.link.roadmap import RoadmapService
from feedback_ai.link.service import MatchService
from feedback_ai.records import SCOPES, Principal
from feedback_ai.service import Dispatch, FeedbackService
from feedback_ai.themes.service import ThemeService

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def get_service(request: Request) -> FeedbackService:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_dispatch(request: Request) -> Dispatch:
    return request.app.state.dispatch  # type: ignore[no-any-return]


async def get_themes(request: Request) -> ThemeService:
    return request.app.state.themes  # type: ignore[no-any-return]


ServiceDep = Annotated[FeedbackService, Depends(get_service)]
ThemesDep = Annotated[ThemeService, Depends(get_themes)]


async def get_roadmap(request: Request) -> RoadmapService:
    return request.app.state.roadmap  # type: ignore[no-any-return]


RoadmapDep = Annotated[RoadmapService, Depends(get_roadmap)]


async def get_match(request: Request) -> MatchService:
    return request.app.state.match  # type: ignore[no-any-return]


MatchDep = Annotated[MatchService, Depends(get_match)]
DispatchDep = Annotated[Dispatch, Depends(get_dispatch)]


async def _principal(
    service: ServiceDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if not service.settings.auth:
        return Principal("default", frozenset(SCOPES), "no-auth")
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    # a cached key costs no I/O; only a lookup leaves the event loop
    principal = service.records.cached_principal(creds.credentials)
    if principal is None:
        principal = await run_in_threadpool(service.records.authenticate, creds.credentials)
    if principal is None:
        raise Unauthenticated("unknown API key")
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
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
