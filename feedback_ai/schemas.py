"""Input and output shapes shared by the API, the CLI and the workers (pydantic v2).

Limits come from `Settings` through the validation context (`{"settings": settings}`), so one
model serves every configured limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from feedback_ai.config import Settings

RATING_SCALES = {"nps": (0.0, 10.0), "stars": (1.0, 5.0)}
_ID_PATTERN = r"^[A-Za-z0-9_.:@/\-]+$"


def _settings(info: ValidationInfo) -> Settings:
    ctx = info.context or {}
    return ctx.get("settings") or Settings()


class FeedbackIn(BaseModel):
    """One feedback item as sent by a client. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    text: str = Field(description="The feedback text; non-empty after trimming.")
    source: str = Field("api", min_length=1, max_length=64, pattern=r"^[a-z0-9_.\-]+$")
    external_id: str | None = Field(None, min_length=1, max_length=256)
    created_at: datetime | None = None
    account_id: str | None = Field(None, min_length=1, max_length=256)
    segment: str | None = Field(None, min_length=1, max_length=128)
    revenue: float | None = Field(None, ge=0, description="ARR of the account, >= 0.")
    rating: float | None = None
    rating_scale: Literal["nps", "stars"] | None = None
    language: str | None = Field(None, min_length=2, max_length=16)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            raise ValueError("text is empty or whitespace only")
        if "\x00" in value:
            raise ValueError("text contains NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: bytes that were not valid UTF-8
            raise ValueError("text is not valid UTF-8") from None
        limit = _settings(info).max_text_chars
        if len(value) > limit:
            raise ValueError(f"text has {len(value)} characters; the maximum is {limit}")
        return value

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # naive timestamps are taken as UTC
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        limit = _settings(info).max_metadata_bytes
        if size > limit:
            raise ValueError(f"metadata is {size} bytes as JSON; the maximum is {limit}")
        return value

    @model_validator(mode="after")
    def _rating(self) -> FeedbackIn:
        if self.rating is None:
            return self
        if self.rating_scale is None:
            raise ValueError("rating needs rating_scale ('nps' 0-10 or 'stars' 1-5)")
        low, high = RATING_SCALES[self.rating_scale]
        if not low <= self.rating <= high:
            raise ValueError(f"rating {self.rating} is outside the {self.rating_scale} scale")
        return self


class ItemError(BaseModel):
    index: int
    field: str | None = None
    reason: str


def validate_items(
    raw_items: Iterable[tuple[int, Any]],
    settings: Settings,
    seen: dict[tuple[str, str], int] | None = None,
) -> tuple[list[tuple[int, FeedbackIn]], list[ItemError]]:
    """Validate each `(index, raw)` on its own: every valid item is kept, every invalid one
    explained. `seen` carries (source, external_id) across chunks of one upload."""
    valid: list[tuple[int, FeedbackIn]] = []
    errors: list[ItemError] = []
    seen = {} if seen is None else seen
    for index, raw in raw_items:
        try:
            item = FeedbackIn.model_validate(raw, context={"settings": settings})
        except ValidationError as exc:
            errors.extend(_item_errors(index, exc))
            continue
        if item.external_id is not None:
            key = (item.source, item.external_id)
            if key in seen:
                errors.append(
                    ItemError(
                        index=index,
                        field="external_id",
                        reason=f"duplicate external_id {item.external_id!r} for source "
                        f"{item.source!r}: already at index {seen[key]} in this batch",
                    )
                )
                continue
            seen[key] = index
        valid.append((index, item))
    return valid, errors


def _item_errors(index: int, exc: ValidationError) -> list[ItemError]:
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or None
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        out.append(ItemError(index=index, field=field, reason=reason))
    return out


class Filters(BaseModel):
    """Search filters; all given conditions must hold."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] | str | None = None
    account_id: list[str] | str | None = None
    segment: list[str] | str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    rating_min: float | None = None
    rating_max: float | None = None
    metadata: dict[str, str | int | float | bool] | None = None

    @field_validator("created_from", "created_to")
    @classmethod
    def _tz(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _ranges(self) -> Filters:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("created_from must be before created_to")
        if (
            self.rating_min is not None
            and self.rating_max is not None
            and self.rating_min > self.rating_max
        ):
            raise ValueError("rating_min must not exceed rating_max")
        return self


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=100)
    filters: Filters | None = None
    mode: Literal["dense", "hybrid"] = Field(
        "dense",
        description="dense: embedding similarity. hybrid: dense + BM25 fused by rank inside "
        "Qdrant; it did not measurably beat dense on eval/results/retrieval_store.md, so it is "
        "opt-in. Either way `score` is the cosine similarity of the best mention.",
    )
    collapse_duplicates: bool = Field(
        False, description="Fold near-duplicate hits (same need said twice) into one with a count."
    )
    collapse_threshold: float = Field(0.9, gt=0, le=1)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("query is empty or whitespace only")
        return value


class MentionHit(BaseModel):
    index: int
    text: str
    score: float


class SearchHit(BaseModel):
    id: str
    score: float
    text: str
    source: str
    created_at: datetime
    account_id: str | None = None
    segment: str | None = None
    rating: float | None = None
    rating_scale: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mentions: list[MentionHit]
    duplicate_count: int = 0
    duplicate_ids: list[str] = Field(default_factory=list)


class SearchResult(BaseModel):
    query: str
    hits: list[SearchHit]


class JobStatus(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    kind: str
    created_at: datetime
    counts: dict[str, int]
    rejected: list[ItemError]
    failed: list[dict[str, Any]]


class FeedbackOut(BaseModel):
    id: str
    text: str
    source: str
    external_id: str | None
    created_at: datetime
    account_id: str | None
    segment: str | None
    revenue: float | None
    rating: float | None
    rating_scale: str | None
    language: str | None
    metadata: dict[str, Any]
    status: str
    error: str | None
    mention_count: int
    mentions: list[MentionHit] = Field(default_factory=list)
    pii_redacted: dict[str, int] = Field(default_factory=dict)
