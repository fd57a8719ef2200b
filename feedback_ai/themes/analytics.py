"""What roadmap tools read: theme rankings, trends, volume alerts and the theme tree.

Counts are of items (an item is counted once per theme however many mentions it has there).

- Growth: `(items + 1) / (previous_items + 1) - 1`, the previous window being the one just before
  (add-one smoothing keeps it defined for themes new in the window).
- Revenue at stake: ARR summed once per account (an item without an account counts alone).
- Alerts: a theme's items in the last `alert_window_days` against its trailing baseline of
  `alert_baseline_days` before that. Under "no change" the window's count is Poisson with mean
  `(baseline + 1) * window / baseline_days`; an alert is raised when the one-sided p-value
  `P(X >= count)` is below `alert_alpha / number of themes` (Bonferroni) and the count is at
  least `alert_min_items`. Themes that emerged since the last refit and have items in the window
  are alerts too (`new_theme`).
- Tree: average-linkage clustering of theme centroids (cosine); themes closer than
  `1 - threshold` at the cut share a parent group.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedback_ai.errors import InvalidInput
from feedback_ai.records.theme_repo import ThemeRecords, Window, utc

SORTS = ("volume", "growth", "accounts", "revenue", "rating", "sentiment")
ASCENDING = {"rating": True, "sentiment": True}  # worst first; the others largest first
INTERVALS = {"day": "D", "week": "W-MON", "month": "MS"}
_WINDOW = re.compile(r"^\s*(\d{1,5})\s*([dw]?)\s*$")


def parse_window(text: str) -> timedelta:
    """'30d', '12w' or '90' (days)."""
    match = _WINDOW.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(
            f"window {text!r} is not a duration like '30d' or '12w'", {"field": "window"}
        )
    n = int(match.group(1))
    return timedelta(weeks=n) if match.group(2) == "w" else timedelta(days=n)


def ranking(
    db: ThemeRecords,
    workspace: str,
    themes: Sequence[Any],
    window: timedelta,
    until: datetime,
    sort: str = "volume",
) -> list[dict[str, Any]]:
    """Every live theme (noise excluded) with its window figures, sorted."""
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {list(SORTS)}, not {sort!r}", {"field": "sort"})
    until = utc(until)
    current = db.aggregate(workspace, Window(until - window, until))
    previous = db.aggregate(workspace, Window(until - 2 * window, until - window))
    rows = [
        _figures(t, current.get(t.id), previous.get(t.id)) for t in themes if t.status != "noise"
    ]
    key = {
        "volume": "items",
        "growth": "growth",
        "accounts": "accounts",
        "revenue": "revenue",
        "rating": "rating_mean",
        "sentiment": "sentiment",
    }[sort]
    present = [r for r in rows if r[key] is not None]
    missing = [r for r in rows if r[key] is None]
    present.sort(key=lambda r: (r[key], r["items"]), reverse=not ASCENDING.get(sort, False))
    return present + sorted(missing, key=lambda r: -r["items"])


def _figures(theme: Any, cur: dict[str, Any] | None, prev: dict[str, Any] | None) -> dict:
    cur = cur or {"items": 0, "accounts": 0, "revenue": 0.0, "rating": {}, "sentiment": None}
    before = (prev or {}).get("items", 0)
    ratings = cur["rating"]
    weighted = [r["mean"] / (10.0 if s == "nps" else 5.0) for s, r in ratings.items()]
    return {
        "theme": theme,
        "items": cur["items"],
        "previous_items": before,
        "growth": round((cur["items"] + 1) / (before + 1) - 1, 4),
        "accounts": cur["accounts"],
        "revenue": round(cur["revenue"], 2),
        "rating": ratings,
        "rating_mean": round(float(np.mean(weighted)), 4) if weighted else None,
        "sentiment": None if cur["sentiment"] is None else round(float(cur["sentiment"]), 4),
    }


def trend(
    db: ThemeRecords, workspace: str, theme_id: str, interval: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per bucket from `start` to `end`: items, distinct accounts, mean rating per scale."""
    if interval not in INTERVALS:
        raise InvalidInput(
            f"interval must be one of {list(INTERVALS)}, not {interval!r}", {"field": "interval"}
        )
    start, end = utc(start), utc(end)
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", {"field": "to"})
    buckets = pd.date_range(_floor(start, interval), end, freq=INTERVALS[interval], tz=UTC)
    if len(buckets) > 5_000:
        raise InvalidInput(f"{len(buckets)} buckets; at most 5000", {"field": "interval"})
    rows = db.rows(workspace, Window(start, end), theme_id)
    frame = pd.DataFrame(
        rows, columns=["theme", "created_at", "account_id", "rating", "scale", "item_id"]
    )
    frame["bucket"] = _bucket(frame["created_at"], interval)
    return [_bucket_figures(b, frame[frame["bucket"] == b]) for b in buckets]


def _floor(value: datetime, interval: str) -> pd.Timestamp:
    return pd.Series([value]).pipe(lambda s: _bucket(s, interval)).iloc[0]  # type: ignore[no-any-return]


def _bucket(values: pd.Series, interval: str) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True)
    if interval == "day":
        return stamps.dt.floor("D")
    if interval == "week":
        return (stamps - pd.to_timedelta(stamps.dt.weekday, unit="D")).dt.floor("D")
    return stamps.dt.to_period("M").dt.to_timestamp().dt.tz_localize(UTC)


def _bucket_figures(bucket: pd.Timestamp, part: pd.DataFrame) -> dict[str, Any]:
    rated = part.dropna(subset=["rating"])
    return {
        "start": bucket.to_pydatetime(),
        "items": int(part["item_id"].nunique()),
        "accounts": int(part["account_id"].dropna().nunique()),
        "rating": {
            str(scale): {"mean": round(float(g["rating"].mean()), 3), "n": len(g)}
            for scale, g in rated.groupby("scale")
        },
    }


def alerts(
    db: ThemeRecords,
    workspace: str,
    themes: Sequence[Any],
    at: datetime,
    window_days: int,
    baseline_days: int,
    alpha: float,
    min_items: int,
) -> list[dict[str, Any]]:
    from scipy.stats import poisson

    at = utc(at)
    split = at - timedelta(days=window_days)
    rows = db.rows(workspace, Window(split - timedelta(days=baseline_days), at))
    frame = pd.DataFrame(rows, columns=["theme", "created_at", "account", "r", "s", "item_id"])
    recent = pd.to_datetime(frame["created_at"], utc=True) >= pd.Timestamp(split)
    live = [t for t in themes if t.status in ("active", "emerging")]
    now_counts = frame[recent].groupby("theme")["item_id"].nunique()
    base_counts = frame[~recent].groupby("theme")["item_id"].nunique()
    out = []
    for theme in live:
        count, base = int(now_counts.get(theme.id, 0)), int(base_counts.get(theme.id, 0))
        expected = (base + 1) * window_days / baseline_days
        p = float(poisson.sf(count - 1, expected))
        if theme.is_new and count > 0:  # emerged since the last refit, active in the window
            out.append(_alert("new_theme", theme, count, base, expected, p))
        elif count >= min_items and p < alpha / max(len(live), 1):
            out.append(_alert("spike", theme, count, base, expected, p))
    evidence = db.evidence(workspace, [a["theme"].id for a in out], Window(split, at))
    for a in out:
        a["evidence"] = evidence.get(a["theme"].id, [])
    return sorted(out, key=lambda a: (a["kind"] != "spike", a["p_value"]))


def _alert(kind: str, theme: Any, count: int, base: int, expected: float, p: float) -> dict:
    return {
        "kind": kind,
        "theme": theme,
        "items": count,
        "baseline_items": base,
        "expected": round(expected, 3),
        "ratio": round(count / expected, 3),
        "p_value": p,
    }


def tree(
    themes: Sequence[Any], centroids: dict[str, np.ndarray], threshold: float
) -> list[dict[str, Any]]:
    """Parent groups over theme centroids, largest first; each names its commonest keywords."""
    from scipy.cluster.hierarchy import fcluster, linkage

    placed = [t for t in themes if t.id in centroids and t.status != "noise"]
    if len(placed) < 2:
        labels = np.ones(len(placed), dtype=int)
    else:
        matrix = np.stack([centroids[t.id] for t in placed]).astype(np.float64)
        cut = 1.0 - threshold
        labels = fcluster(linkage(matrix, "average", metric="cosine"), cut, "distance")
    groups: dict[int, list[Any]] = {}
    for theme, g in zip(placed, labels, strict=True):
        groups.setdefault(int(g), []).append(theme)
    out = [_group(members) for members in groups.values()]
    return sorted(out, key=lambda g: -g["items"])


def _group(members: list[Any]) -> dict[str, Any]:
    words: Counter[str] = Counter()
    for t in members:
        for kw in (t.keywords or [])[:5]:
            words[kw] += max(t.items, 1)
    members = sorted(members, key=lambda t: -t.items)
    return {
        "label": " / ".join(w for w, _ in words.most_common(3)) or members[0].label,
        "items": sum(t.items for t in members),
        "themes": members,
    }


def now() -> datetime:
    return datetime.now(UTC)
