"""Theme reads for the API: the registry and `analytics` rendered as response shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feedback_ai.errors import InvalidInput
from feedback_ai.records.theme_repo import utc
from feedback_ai.themes import analytics
from feedback_ai.themes import schemas as out

if TYPE_CHECKING:
    from feedback_ai.themes.service import ThemeService

MAX_PAGE = 200


def page_bounds(offset: int, limit: int) -> None:
    if offset < 0:
        raise InvalidInput("offset must be >= 0", {"field": "offset"})
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", {"field": "limit"})


def themes(
    svc: ThemeService,
    workspace: str,
    window: str,
    sort: str,
    offset: int,
    limit: int,
    until: datetime | None = None,
) -> out.ThemeList:
    page_bounds(offset, limit)
    span = analytics.parse_window(window)
    end = utc(until) if until else analytics.now()
    facts = svc.facts.get(workspace)
    page = analytics.ranking(facts, facts.themes, span, end, sort, slice(offset, offset + limit))
    ids = [r["theme"].id for r in page]
    evidence = analytics.evidence(facts, ids, analytics.Window(end - span, end))
    return out.ThemeList(
        taxonomy_version=facts.version,
        window=window,
        start=end - span,
        end=end,
        sort=sort,
        total=sum(t.status != "noise" for t in facts.themes),
        offset=offset,
        limit=limit,
        themes=[_summary(r, evidence.get(r["theme"].id, [])) for r in page],
    )


def _summary(row: dict[str, Any], evidence: list[str]) -> out.ThemeSummary:
    t = row["theme"]
    return out.ThemeSummary(
        id=t.id,
        label=t.label,
        status=t.status,
        is_new=t.is_new,
        keywords=t.keywords,
        items=row["items"],
        previous_items=row["previous_items"],
        growth=row["growth"],
        accounts=row["accounts"],
        revenue=row["revenue"],
        rating={k: out.RatingStat(**v) for k, v in row["rating"].items()},
        sentiment=row["sentiment"],
        evidence=evidence,
    )


def detail(svc: ThemeService, workspace: str, theme_id: str) -> out.ThemeDetail:
    t = svc.db.theme(workspace, theme_id)
    return out.ThemeDetail(
        taxonomy_version=svc.db.version(workspace),
        id=t.id,
        label=t.label,
        label_pinned=t.label_pinned,
        status=t.status,
        is_new=t.is_new,
        origin=t.origin,
        keywords=t.keywords,
        quotes=[out.Quote(**q) for q in t.quotes],
        items=t.items,
        mentions=t.mentions,
        merged_into=t.merged_into,
        split_from=t.split_from,
        created_version=t.created_version,
        updated_version=t.updated_version,
        created_at=utc(t.created_at),
        updated_at=utc(t.updated_at),
        history=[_event(e) for e in svc.db.events(workspace, theme_id)],
    )


def _event(e: Any) -> out.EventOut:
    return out.EventOut(
        version=e.version,
        kind=e.kind,
        theme_id=e.theme_id,
        other=e.other,
        actor=e.actor,
        at=utc(e.at),
        detail=e.detail or {},
    )


def feedback(
    svc: ThemeService, workspace: str, theme_id: str, offset: int, limit: int
) -> out.ThemeFeedback:
    page_bounds(offset, limit)
    svc.db.theme(workspace, theme_id)  # 404 for an unknown theme
    total, rows = svc.db.feedback(workspace, theme_id, offset, limit)
    return out.ThemeFeedback(
        taxonomy_version=svc.db.version(workspace),
        theme_id=theme_id,
        total=total,
        offset=offset,
        limit=limit,
        items=[
            out.ThemeItem(
                id=r.item_id,
                text=text,
                created_at=utc(r.created_at),
                account_id=r.account_id,
                rating=r.rating,
                rating_scale=r.rating_scale,
                mentions=r.mentions,
                similarity=r.similarity,
                sentiment=r.sentiment,
                origin=r.origin,
            )
            for r, text in rows
        ],
    )


def trend(
    svc: ThemeService,
    workspace: str,
    theme_id: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> out.Trend:
    svc.db.theme(workspace, theme_id)
    end = utc(end) if end else analytics.now()
    start = utc(start) if start else end - analytics.parse_window("52w")
    facts = svc.facts.get(workspace)
    buckets = analytics.trend(facts, theme_id, interval, start, end)
    return out.Trend(
        taxonomy_version=facts.version,
        theme_id=theme_id,
        interval=interval,  # type: ignore[arg-type]  # validated by analytics.trend
        start=start,
        end=end,
        buckets=[out.Bucket(**b) for b in buckets],
    )


def alerts(svc: ThemeService, workspace: str, at: datetime | None) -> out.AlertList:
    s = svc.settings
    at = utc(at) if at else analytics.now()
    facts = svc.facts.get(workspace)
    found = analytics.alerts(
        facts,
        facts.themes,
        at,
        s.alert_window_days,
        s.alert_baseline_days,
        s.alert_alpha,
        s.alert_min_items,
    )
    return out.AlertList(
        taxonomy_version=facts.version,
        at=at,
        window_days=s.alert_window_days,
        baseline_days=s.alert_baseline_days,
        alpha=s.alert_alpha,
        alerts=[
            out.Alert(
                kind=a["kind"],
                theme_id=a["theme"].id,
                label=a["theme"].label,
                items=a["items"],
                baseline_items=a["baseline_items"],
                expected=a["expected"],
                ratio=a["ratio"],
                share=a["share"],
                baseline_share=a["baseline_share"],
                p_value=a["p_value"],
                evidence=a["evidence"],
            )
            for a in found
        ],
    )


def tree(svc: ThemeService, workspace: str, threshold: float) -> out.Tree:
    if not 0 < threshold < 1:
        raise InvalidInput("threshold must be between 0 and 1", {"field": "threshold"})
    cents = {t.theme_id: t.vector for t in svc.store.list_themes(workspace)}
    groups = analytics.tree(svc.db.themes(workspace), cents, threshold)
    return out.Tree(
        taxonomy_version=svc.db.version(workspace),
        threshold=threshold,
        groups=[
            out.TreeGroup(
                label=g["label"],
                items=g["items"],
                themes=[out.TreeTheme(id=t.id, label=t.label, items=t.items) for t in g["themes"]],
            )
            for g in groups
        ],
    )


def run_status(svc: ThemeService, workspace: str, job_id: str) -> out.RunStatus:
    run = svc.db.run(workspace, job_id)
    return out.RunStatus(
        job_id=run.job_id,
        kind=run.kind,
        status=run.state,  # type: ignore[arg-type]
        stage=run.stage,
        progress={"done": run.done, "total": run.total},
        result=run.result or {},
        error=run.error,
        created_at=utc(run.created_at or datetime.now(UTC)),
        updated_at=utc(run.updated_at or datetime.now(UTC)),
    )
