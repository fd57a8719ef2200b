"""The vector-store contract. Every Qdrant call of the project lives in `feedback_ai/store/`.

Two collections per engine: *mentions* (the feedback) and *themes*: one vector per theme (its
centroid, for live assignment and the tree) and per roadmap item (`kind="roadmap"`, for matching).

A *mention* is one embedded span of a feedback item (short feedback: one mention; long feedback:
one per sentence group). Each mention is one point; its payload carries the parent `item_id` and
the item's filterable fields, so a search can filter and group by item without a second lookup.

Every method takes the workspace explicitly and every query filters on it: nothing crosses
workspaces.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

# Payload fields that get a payload index (keyword unless noted).
KEYWORD_FIELDS = ("workspace", "item_id", "source", "account_id", "segment")
FLOAT_FIELDS = ("created_at", "rating")  # created_at is stored as epoch seconds (UTC)


@dataclass(frozen=True)
class MentionPoint:
    id: str  # deterministic UUID string (see feedback_ai.ids)
    vector: np.ndarray  # float32, L2-normalised, shape (dim,)
    workspace: str
    item_id: str
    mention_index: int
    text: str
    source: str
    created_at: datetime
    account_id: str | None = None
    segment: str | None = None
    rating: float | None = None
    rating_scale: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sentiment: float | None = None  # in [-1, 1]; see feedback_ai.nlp.sentiment


@dataclass(frozen=True)
class SearchFilter:
    """Conditions ANDed together; list values match any of their members."""

    source: Sequence[str] | None = None
    account_id: Sequence[str] | None = None
    segment: Sequence[str] | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    rating_min: float | None = None  # inclusive
    rating_max: float | None = None  # inclusive
    metadata: dict[str, str | int | float | bool] | None = None  # exact match on metadata.<key>


@dataclass(frozen=True)
class ScoredMention:
    id: str
    score: float
    workspace: str
    item_id: str
    mention_index: int
    text: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class ThemePoint:
    """A theme's centroid. `theme_id` is the registry's id; the point id derives from it."""

    workspace: str
    theme_id: str
    vector: np.ndarray  # float32, L2-normalised, shape (dim,)
    label: str = ""
    status: str = "active"
    kind: str = "theme"  # "theme" or "roadmap" (a roadmap item's title + description)


@dataclass(frozen=True)
class ThemeHit:
    theme_id: str
    score: float  # cosine similarity to the centroid


class VectorStore(abc.ABC):
    """Narrow interface over a Qdrant engine; one collection of mention points."""

    dim: int

    @abc.abstractmethod
    def upsert(self, points: Sequence[MentionPoint]) -> None:
        """Insert or overwrite points by id (replaying the same points is a no-op)."""

    @abc.abstractmethod
    def delete_items(self, workspace: str, item_ids: Sequence[str]) -> None:
        """Remove every mention of these items in this workspace."""

    @abc.abstractmethod
    def search(
        self,
        workspace: str,
        vector: np.ndarray,
        limit: int,
        filter: SearchFilter | None = None,
        with_vectors: bool = False,
        text: str | None = None,
    ) -> list[ScoredMention]:
        """Nearest mentions, best first. Dense only: `score` is the cosine similarity. With the
        query's `text`: hybrid, dense and BM25 (over mention texts) fused by Reciprocal Rank
        Fusion; the order is the fused rank and `score` the fused score."""

    @abc.abstractmethod
    def mentions_of(self, workspace: str, item_id: str) -> list[ScoredMention]:
        """All mentions of one item, ordered by mention_index (score is 1.0)."""

    @abc.abstractmethod
    def count(self, workspace: str, filter: SearchFilter | None = None) -> int:
        """Exact number of mentions in the workspace matching the filter."""

    @abc.abstractmethod
    def scroll(
        self, workspace: str, with_vectors: bool = True, page: int = 1_000
    ) -> Iterator[list[ScoredMention]]:
        """Every mention of the workspace, a page at a time (score 1.0): what a refit reads."""

    @abc.abstractmethod
    def retrieve(
        self, workspace: str, point_ids: Sequence[str], with_vectors: bool = True
    ) -> list[ScoredMention]:
        """These mentions of this workspace (unknown ids and other workspaces' are skipped)."""

    # --- theme centroids

    @abc.abstractmethod
    def upsert_themes(self, themes: Sequence[ThemePoint]) -> None:
        """Insert or overwrite theme centroids by (workspace, theme_id)."""

    @abc.abstractmethod
    def delete_themes(self, workspace: str, theme_ids: Sequence[str], kind: str = "theme") -> None:
        """Remove these theme centroids (or roadmap vectors)."""

    @abc.abstractmethod
    def list_themes(self, workspace: str, kind: str = "theme") -> list[ThemePoint]:
        """Every theme centroid (or roadmap vector) of the workspace."""

    @abc.abstractmethod
    def nearest_themes(
        self, workspace: str, vectors: np.ndarray, limit: int = 1, kind: str = "theme"
    ) -> list[list[ThemeHit]]:
        """For each row of `vectors` (n, dim): the nearest theme centroids (or roadmap
        vectors), best first."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Persist pending writes (embedded engines)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""

    def ready(self) -> bool:
        return True
