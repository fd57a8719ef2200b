"""Request and response shapes of the roadmap, link, match and webhook API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from feedback_ai.records.link_models import ROADMAP_STATUSES

Status = Literal["idea", "planned", "in_progress", "shipped", "declined"]
Decision = Literal["matched", "needs_review", "no_match"]
_KEY = r"^[A-Za-z0-9_.:\-/#]{1,128}$"
assert set(Status.__args__) == set(ROADMAP_STATUSES)  # type: ignore[attr-defined]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoadmapIn(_In):
    key: str = Field(pattern=_KEY, description="The tracker's key, e.g. a Jira or Linear key.")
    title: str = Field(min_length=1, max_length=512)
    description: str = Field("", max_length=20_000)
    status: Status = "idea"
    url: HttpUrl | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("title is empty or whitespace only")
        return value


class RoadmapPatch(_In):
    title: str | None = Field(None, min_length=1, max_length=512)
    description: str | None = Field(None, max_length=20_000)
    status: Status | None = None
    url: HttpUrl | None = None
    tags: list[str] | None = Field(None, max_length=50)


class RoadmapBatch(_In):
    items: list[RoadmapIn] = Field(description="Upserted by key; at most 1,000.")


class Upserted(BaseModel):
    created: list[str]
    updated: list[str]
    status_changed: list[str]


class Demand(BaseModel):
    items: int = Field(
        description="Distinct feedback items behind the item (via its themes or linked directly)."
    )
    accounts: int
    revenue: float = Field(description="ARR summed once per account.")
    trend: list[dict[str, Any]] = Field(description="Items per week, the last 12 weeks.")


class ThemeRef(BaseModel):
    theme_id: str
    label: str
    state: Literal["confirmed", "rejected", "suggested"]
    confidence: float | None


class RoadmapOut(BaseModel):
    key: str
    title: str
    description: str
    status: str
    url: str | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    demand: Demand | None = None
    themes: list[ThemeRef] = Field(default_factory=list)


class RoadmapList(BaseModel):
    sort: str
    total: int
    items: list[RoadmapOut]


class LinkIn(_In):
    action: Literal["confirm", "reject"] = "confirm"


class FeedbackLinkIn(_In):
    roadmap_key: str | None = Field(None, description="The roadmap item the feedback is about.")
    theme_id: str | None = Field(None, description="Or the theme it belongs to.")
    action: Literal["confirm", "reject"] = "confirm"


class Requester(BaseModel):
    account_id: str
    items: int
    revenue: float | None


class RequesterItem(BaseModel):
    id: str
    text: str
    account_id: str | None
    created_at: datetime
    via: str = Field(description="'feedback' (linked directly) or the linked theme's id.")


class Requesters(BaseModel):
    key: str
    status: str
    accounts: list[Requester] = Field(
        description="Accounts behind the linked feedback, most items first."
    )
    unattributed_items: int = Field(description="Linked feedback items without an account_id.")
    feedback: list[RequesterItem]


class MatchIn(_In):
    text: str = Field(min_length=1, max_length=20_000)
    account_id: str | None = Field(None, max_length=256)
    k: int = Field(3, ge=1, le=20)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("text is empty or whitespace only")
        return value


class Candidate(BaseModel):
    id: str
    label: str
    confidence: float = Field(description="Calibrated P(this is the right one), in [0, 1].")
    score: float = Field(description="Raw cosine similarity.")
    decision: Decision


class SimilarFeedback(BaseModel):
    id: str
    text: str
    score: float
    confidence: float = Field(description="Calibrated P(same need), in [0, 1].")
    decision: Decision
    account_id: str | None
    created_at: datetime


class MatchOut(BaseModel):
    decision: Decision = Field(description="The best roadmap item's, else the best theme's.")
    thresholds: dict[str, float]
    stale: bool = Field(
        False,
        description="True when themes or roadmap items changed and their matcher is still being "
        "refitted: candidates come from the last fitted one (ask again in a few seconds).",
    )
    partial: bool = Field(
        False,
        description="True when the roadmap candidates come from a fit's first stage: the latest "
        "items and links are in, the matcher's lexical view is still being fitted (a point or "
        "so of top-1 accuracy; ask again later for the full answer).",
    )
    in_scope: dict[str, float | None] = Field(
        default_factory=dict,
        description="Per list (`themes`, `roadmap`): P(the ticket is about one of its entries at "
        "all), from its best candidate; low when it is about nothing known yet. None without "
        "a calibrator fitted on out-of-scope tickets.",
    )
    themes: list[Candidate]
    roadmap: list[Candidate]
    feedback: list[SimilarFeedback]


class WebhookIn(_In):
    url: HttpUrl
    events: list[Literal["roadmap.status_changed"]] = Field(default_factory=list)
    secret: str | None = Field(None, description="whsec_<base64>; generated when absent.")


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    secret: str | None = Field(None, description="Shown once, at creation.")
    created_at: datetime


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]
