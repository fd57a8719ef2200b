"""Request and response shapes of the theme API. Every response carries `taxonomy_version`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingStat(BaseModel):
    mean: float
    n: int


class Quote(BaseModel):
    item_id: str
    mention_index: int
    text: str
    similarity: float


class ThemeSummary(BaseModel):
    id: str
    label: str
    status: str
    is_new: bool
    keywords: list[str]
    items: int = Field(description="Items in the window (an item counts once).")
    previous_items: int = Field(description="Items in the window before it.")
    growth: float = Field(description="(items + 1) / (previous_items + 1) - 1")
    accounts: int = Field(description="Distinct accounts in the window.")
    revenue: float = Field(description="ARR at stake: summed once per account.")
    rating: dict[str, RatingStat] = Field(description="Mean rating per scale (nps, stars).")
    sentiment: float | None = Field(description="Mean sentiment in [-1, 1] of its items.")
    evidence: list[str] = Field(description="Ids of the most recent items behind the figures.")


class ThemeList(BaseModel):
    taxonomy_version: int
    window: str
    start: datetime
    end: datetime
    sort: str
    total: int
    offset: int
    limit: int
    themes: list[ThemeSummary]


class EventOut(BaseModel):
    version: int
    kind: str
    theme_id: str | None
    other: str | None
    actor: str
    at: datetime
    detail: dict[str, Any]


class ThemeDetail(BaseModel):
    taxonomy_version: int
    id: str
    label: str
    label_pinned: bool
    status: str
    is_new: bool
    origin: str
    keywords: list[str]
    quotes: list[Quote] = Field(description="Representative mentions; item ids are evidence.")
    items: int = Field(description="Items in the theme now.")
    mentions: int
    merged_into: str | None
    split_from: str | None
    created_version: int
    updated_version: int
    created_at: datetime
    updated_at: datetime
    history: list[EventOut] = Field(description="Lineage and audit, newest first.")


class ThemeItem(BaseModel):
    id: str
    text: str
    created_at: datetime
    account_id: str | None
    rating: float | None
    rating_scale: str | None
    mentions: int = Field(description="How many of its mentions are in the theme.")
    similarity: float
    sentiment: float | None
    origin: str = Field(description="refit, live (at ingest) or manual (placed by a person).")


class ThemeFeedback(BaseModel):
    taxonomy_version: int
    theme_id: str
    total: int
    offset: int
    limit: int
    items: list[ThemeItem]


class Bucket(BaseModel):
    start: datetime
    items: int
    accounts: int
    rating: dict[str, RatingStat]


class Trend(BaseModel):
    taxonomy_version: int
    theme_id: str
    interval: Literal["day", "week", "month"]
    start: datetime
    end: datetime
    buckets: list[Bucket]


class Alert(BaseModel):
    kind: Literal["spike", "new_theme"]
    theme_id: str
    label: str
    items: int = Field(description="Items in the alert window.")
    baseline_items: int = Field(description="Items in the trailing baseline before it.")
    expected: float = Field(
        description="Items expected in the window were the theme's share of all items unchanged."
    )
    ratio: float | None = Field(description="items / expected (null when nothing was expected).")
    share: float = Field(description="The theme's share of the window's items.")
    baseline_share: float = Field(description="Its share of the baseline's items.")
    p_value: float = Field(
        description="Fisher's exact test, one-sided: P(X >= items) were the share unchanged."
    )
    evidence: list[str]


class AlertList(BaseModel):
    taxonomy_version: int
    at: datetime
    window_days: int
    baseline_days: int
    alpha: float
    alerts: list[Alert]


class TreeTheme(BaseModel):
    id: str
    label: str
    items: int


class TreeGroup(BaseModel):
    label: str
    items: int
    themes: list[TreeTheme]


class Tree(BaseModel):
    taxonomy_version: int
    threshold: float
    groups: list[TreeGroup]


class RunStatus(BaseModel):
    job_id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str
    progress: dict[str, int]
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime


class Changed(BaseModel):
    taxonomy_version: int
    theme_ids: list[str] = Field(default_factory=list)


class ThemePatch(_In):
    label: str | None = Field(None, description="Rename; pins the label across refits.")
    noise: bool | None = Field(None, description="Mark (or unmark) the theme as noise.")


class MergeIn(_In):
    into: str = Field(description="The theme that absorbs this one (keeps its id).")


class SplitIn(_In):
    n: int = Field(description="Number of parts, 2 to 10; the largest keeps the id.")


class MoveIn(_In):
    item_id: str = Field(description="The feedback item to place in this theme.")
    from_theme: str | None = Field(None, description="Leave only this theme (default: all).")
