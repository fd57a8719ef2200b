"""The payload layout shared by every backend, and filters as a neutral condition list.

One point per mention; its payload::

    workspace, item_id, mention_index, text, source   always present
    created_at                                        float, epoch seconds UTC
    account_id, segment, rating, rating_scale,
    sentiment                                         present only when set
    metadata                                          object; filters address `metadata.<key>`

Backends never build payloads or filters themselves: they call `to_payload` / `to_scored` and map
the `Match` / `Range` conditions of `conditions()` onto their own filter types, so a filter means
the same thing on every engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from feedback_ai.errors import InvalidInput
from feedback_ai.store._base import MentionPoint, ScoredMention, SearchFilter, ThemePoint

Scalar = str | int | bool

_OPTIONAL_FIELDS = ("account_id", "segment", "rating", "rating_scale", "sentiment")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # no dots or brackets: one path segment


@dataclass(frozen=True)
class Match:
    """`key` equals one of `values` (an empty tuple matches nothing)."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """Numeric range on `key`; unset bounds are open."""

    key: str
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


Condition = Match | Range


def epoch(value: datetime) -> float:
    """Epoch seconds; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def vector_list(vector: np.ndarray, dim: int) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise InvalidInput(f"vector has shape {array.shape}, expected ({dim},)")
    return array.tolist()


def to_payload(point: MentionPoint) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "workspace": point.workspace,
        "item_id": point.item_id,
        "mention_index": point.mention_index,
        "text": point.text,
        "source": point.source,
        "created_at": epoch(point.created_at),
        "metadata": dict(point.metadata),
    }
    for name in _OPTIONAL_FIELDS:
        value = getattr(point, name)
        if value is not None:
            payload[name] = float(value) if name in ("rating", "sentiment") else value
    return payload


def to_point(point_id: str, vector: np.ndarray, payload: dict[str, Any]) -> MentionPoint:
    """The inverse of `to_payload`."""
    optional = {name: payload.get(name) for name in _OPTIONAL_FIELDS}
    return MentionPoint(
        id=point_id,
        vector=vector,
        workspace=payload["workspace"],
        item_id=payload["item_id"],
        mention_index=payload["mention_index"],
        text=payload["text"],
        source=payload["source"],
        created_at=from_epoch(payload["created_at"]),
        metadata=dict(payload.get("metadata") or {}),
        **optional,
    )


def to_scored(
    point_id: Any, score: float, payload: dict[str, Any], vector: Any = None
) -> ScoredMention:
    return ScoredMention(
        id=str(point_id),
        score=float(score),
        workspace=payload["workspace"],
        item_id=payload["item_id"],
        mention_index=int(payload["mention_index"]),
        text=payload["text"],
        payload=payload,
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
    )


def theme_payload(theme: ThemePoint) -> dict[str, Any]:
    return {
        "workspace": theme.workspace,
        "theme_id": theme.theme_id,
        "label": theme.label,
        "status": theme.status,
        "kind": theme.kind,
    }


def to_theme(payload: dict[str, Any], vector: Any) -> ThemePoint:
    return ThemePoint(
        workspace=payload["workspace"],
        theme_id=payload["theme_id"],
        vector=np.asarray(vector, dtype=np.float32),
        label=payload.get("label", ""),
        status=payload.get("status", "active"),
        kind=payload.get("kind", "theme"),
    )


def anchor_conditions(workspace: str, kind: str) -> list[Condition]:
    """The themes collection holds theme centroids and roadmap vectors: filter on both."""
    return [Match("workspace", (workspace,)), Match("kind", (kind,))]


def vector_rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    """A (n, dim) float32 matrix of query vectors, or InvalidInput."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidInput(f"vectors have shape {array.shape}, expected (n, {dim})")
    return array


def by_mention_index(mentions: list[ScoredMention]) -> list[ScoredMention]:
    return sorted(mentions, key=lambda m: m.mention_index)


def conditions(
    workspace: str, filter: SearchFilter | None = None, item_ids: Sequence[str] | None = None
) -> list[Condition]:
    """ANDed conditions: always the workspace first, then the filter's and the item ids."""
    out: list[Condition] = [Match("workspace", (workspace,))]
    if item_ids is not None:
        out.append(Match("item_id", _values(item_ids)))
    if filter is not None:
        out.extend(_filter_conditions(filter))
    return out


def _filter_conditions(f: SearchFilter) -> list[Condition]:
    out: list[Condition] = [
        Match(key, _values(values))
        for key, values in (
            ("source", f.source),
            ("account_id", f.account_id),
            ("segment", f.segment),
        )
        if values is not None
    ]
    if f.created_from is not None or f.created_to is not None:
        out.append(
            Range(
                "created_at",
                gte=None if f.created_from is None else epoch(f.created_from),
                lt=None if f.created_to is None else epoch(f.created_to),
            )
        )
    if f.rating_min is not None or f.rating_max is not None:
        out.append(Range("rating", gte=f.rating_min, lte=f.rating_max))
    for key, value in (f.metadata or {}).items():
        out.append(_metadata_condition(key, value))
    return out


def _metadata_condition(key: str, value: str | int | float | bool) -> Condition:
    if not _METADATA_KEY.match(key):
        raise InvalidInput(f"metadata filter key {key!r} must match {_METADATA_KEY.pattern}")
    path = f"metadata.{key}"
    if isinstance(value, float):  # engines match floats by range, not by keyword
        return Range(path, gte=value, lte=value)
    return Match(path, (value,))


def _values(values: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(values, str):  # a bare string is one value, not a sequence of characters
        return (values,)
    return tuple(values)
