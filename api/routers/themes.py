"""Themes for roadmap tools: rankings, trends, alerts, the tree; refits and human edits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.deps import AdminAuth, ReadAuth, ThemesDep
from feedback_ai.themes import edits, read
from feedback_ai.themes import schemas as s

router = APIRouter(prefix="/v1/themes", tags=["themes"])

Until = Annotated[
    datetime | None, Query(description="End of the window (default now); ISO 8601, naive = UTC.")
]


@router.get("", response_model=s.ThemeList)
def list_themes(
    principal: ReadAuth,
    themes: ThemesDep,
    window: Annotated[str, Query(description="Window length: '30d', '12w' or days.")] = "30d",
    sort: Annotated[
        str,
        Query(
            description="volume | growth | accounts | revenue (largest first); "
            "rating | sentiment (worst first)"
        ),
    ] = "volume",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=read.MAX_PAGE)] = 50,
    until: Until = None,
) -> s.ThemeList:
    """Live themes ranked over the window, each with its figures and evidence ids."""
    return read.themes(themes, principal.workspace, window, sort, offset, limit, until)


@router.get("/alerts", response_model=s.AlertList)
def alerts(
    principal: ReadAuth,
    themes: ThemesDep,
    at: Annotated[datetime | None, Query(description="Evaluate as of (default now).")] = None,
) -> s.AlertList:
    """Volume spikes against a trailing baseline (Poisson test) and newly emerged themes."""
    return read.alerts(themes, principal.workspace, at)


@router.get("/tree", response_model=s.Tree)
def tree(
    principal: ReadAuth,
    themes: ThemesDep,
    threshold: Annotated[float, Query(gt=0, lt=1, description="Cosine to share a parent.")] = 0.6,
) -> s.Tree:
    """Parent groups of themes: average-linkage clustering of their centroids."""
    return read.tree(themes, principal.workspace, threshold)


@router.post("/refit", status_code=status.HTTP_202_ACCEPTED, response_model=s.RunStatus)
def refit(principal: AdminAuth, themes: ThemesDep, request: Request) -> s.RunStatus:
    """Queue a refit of the workspace's themes; follow it at GET /v1/jobs/{job_id}."""
    job_id = themes.start_refit(principal.workspace)
    request.app.state.dispatch.refit(job_id, principal.workspace)
    return read.run_status(themes, principal.workspace, job_id)


@router.get("/{theme_id}", response_model=s.ThemeDetail)
def get_theme(theme_id: str, principal: ReadAuth, themes: ThemesDep) -> s.ThemeDetail:
    """One theme (live or gone), with its quotes and its lineage and audit history."""
    return read.detail(themes, principal.workspace, theme_id)


@router.get("/{theme_id}/feedback", response_model=s.ThemeFeedback)
def theme_feedback(
    theme_id: str,
    principal: ReadAuth,
    themes: ThemesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=read.MAX_PAGE)] = 50,
) -> s.ThemeFeedback:
    """The theme's items, newest first."""
    return read.feedback(themes, principal.workspace, theme_id, offset, limit)


@router.get("/{theme_id}/trend", response_model=s.Trend)
def trend(
    theme_id: str,
    principal: ReadAuth,
    themes: ThemesDep,
    interval: Annotated[str, Query(description="day | week | month")] = "week",
    start: Annotated[
        datetime | None, Query(alias="from", description="Default: 52 weeks before 'to'.")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now.")] = None,
) -> s.Trend:
    """Items, distinct accounts and mean rating per bucket."""
    return read.trend(themes, principal.workspace, theme_id, interval, start, end)


@router.patch("/{theme_id}", response_model=s.Changed)
def patch_theme(
    theme_id: str, body: s.ThemePatch, principal: AdminAuth, themes: ThemesDep
) -> s.Changed:
    """Rename (pins the label across refits) and/or mark as noise."""
    version = themes.db.version(principal.workspace)
    if body.label is not None:
        version = edits.rename(themes, principal.workspace, theme_id, body.label, principal.name)
    if body.noise is not None:
        version = edits.set_noise(themes, principal.workspace, theme_id, body.noise, principal.name)
    return s.Changed(taxonomy_version=version, theme_ids=[theme_id])


@router.post("/{theme_id}/merge", response_model=s.Changed)
def merge(theme_id: str, body: s.MergeIn, principal: AdminAuth, themes: ThemesDep) -> s.Changed:
    """Merge this theme into `into` (which keeps its id); later refits keep them merged."""
    version = edits.merge(themes, principal.workspace, theme_id, body.into, principal.name)
    return s.Changed(taxonomy_version=version, theme_ids=[body.into])


@router.post("/{theme_id}/split", response_model=s.Changed)
def split(theme_id: str, body: s.SplitIn, principal: AdminAuth, themes: ThemesDep) -> s.Changed:
    """Split into `n` parts (k-means over its mentions); the largest part keeps the id."""
    parts = edits.split(themes, principal.workspace, theme_id, body.n, principal.name)
    return s.Changed(taxonomy_version=themes.db.version(principal.workspace), theme_ids=parts)


@router.post("/{theme_id}/feedback", response_model=s.Changed)
def move_feedback(
    theme_id: str, body: s.MoveIn, principal: AdminAuth, themes: ThemesDep
) -> s.Changed:
    """Place a feedback item in this theme (out of `from_theme`, or out of all); later refits
    keep it there."""
    version = edits.move(
        themes, principal.workspace, body.item_id, theme_id, principal.name, body.from_theme
    )
    return s.Changed(taxonomy_version=version, theme_ids=[theme_id])
