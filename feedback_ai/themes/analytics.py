"""What roadmap tools read: theme rankings, trends, volume alerts and the theme tree.

All figures come from `Facts` (the workspace's theme memberships as columns, see `facts.py`).
Counts are of items: an item is counted once per theme however many mentions it has there.
Windows are half-open, `[start, end)`.

- Growth: `(items + 1) / (previous_items + 1) - 1`, the previous window being the one just before
  (add-one smoothing keeps it defined for themes new in the window).
- Revenue at stake: ARR summed once per account (an item without an account counts alone).
- Alerts: a theme's share of the items in the last `alert_window_days` against its share of the
  trailing baseline of `alert_baseline_days` before that. A theme spikes when it grew faster than
  the workspace's feedback as a whole: a surge of all volume (a release, a campaign, an outage of
  the whole app) lifts every theme's count and is not a spike of any one. The test is Fisher's
  exact test, one-sided, on (theme, other items) x (window, baseline) item counts: under "no
  change" the theme's window count is hypergeometric, with mean `(items + baseline_items) x
  window_total / (window_total + baseline_total)`. An alert is raised when `P(X >= items)` is
  below `alert_alpha / number of themes` (Bonferroni) and the count is at least
  `alert_min_items`; there are no spike alerts while the workspace has less than one window of
  history before the alert window (no baseline to compare with). Themes that emerged since the
  last refit and have items in the window are alerts too (`new_theme`).
- Tree: average-linkage clustering of theme centroids (cosine); themes closer than
  `1 - threshold` at the cut share a parent group.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedback_ai.errors import InvalidInput
from feedback_ai.records.theme_repo import utc
from feedback_ai.themes.facts import SCALES, Facts

SORTS = ("volume", "growth", "accounts", "revenue", "rating", "sentiment")
ASCENDING = {"rating": True, "sentiment": True}  # worst first; the others largest first
INTERVALS = {"day": "D", "week": "W-MON", "month": "MS"}
MAX_BUCKETS = 5_000
_WINDOW = re.compile(r"^\s*(\d{1,5})\s*([dw]?)\s*$")
_KEYS = {
    "volume": "items",
    "growth": "growth",
    "accounts": "accounts",
    "revenue": "revenue",
    "rating": "rating_mean",
    "sentiment": "sentiment",
}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def mask(self, facts: Facts) -> np.ndarray:
        return (facts.ts >= utc(self.start).timestamp()) & (facts.ts < utc(self.end).timestamp())


def parse_window(text: str) -> timedelta:
    """'30d', '12w' or '90' (days)."""
    match = _WINDOW.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(
            f"window {text!r} is not a duration like '30d' or '12w'", {"field": "window"}
        )
    n = int(match.group(1))
    return timedelta(weeks=n) if match.group(2) == "w" else timedelta(days=n)


# --- rankings


def ranking(
    facts: Facts,
    themes: Sequence[Any],
    window: timedelta,
    until: datetime,
    sort: str = "volume",
    page: slice = slice(None),
) -> list[dict[str, Any]]:
    """Every live theme (noise excluded) with its window figures, sorted; only the rows in `page`
    of that order are built (the figures of all themes are computed as arrays)."""
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {list(SORTS)}, not {sort!r}", {"field": "sort"})
    until = utc(until)
    current = figures(facts, Window(until - window, until).mask(facts))
    before = np.bincount(
        facts.theme[Window(until - 2 * window, until - window).mask(facts)],
        minlength=len(facts.theme_ids),
    )
    cols = columns(current, before)
    live = [t for t in themes if t.status != "noise"]
    pos = [facts.index(t.id) for t in live]  # -1 (no rows) reads the columns' last, empty slot
    keys = cols[_KEYS[sort]][pos].tolist()
    items = cols["items"][pos].tolist()
    present = [i for i, k in enumerate(keys) if not np.isnan(k)]
    missing = [i for i, k in enumerate(keys) if np.isnan(k)]
    present.sort(key=lambda i: (keys[i], items[i]), reverse=not ASCENDING.get(sort, False))
    missing.sort(key=lambda i: -items[i])
    return [_row(live[i], cols, pos[i]) for i in (present + missing)[page]]


def _sums(theme: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """float64 sums of `weights` per theme 0..n-1 (numpy's weighted bincount of no rows gives
    int64 zeros, which broke `+=` of ARR when no item in the window had an account)."""
    return np.bincount(theme, weights=weights, minlength=n).astype(np.float64, copy=False)


def figures(facts: Facts, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per theme (index of facts.theme_ids) over the masked rows."""
    n = len(facts.theme_ids)
    theme = facts.theme[mask]
    account = facts.account[mask]
    revenue = np.nan_to_num(facts.revenue[mask])
    out = {"items": np.bincount(theme, minlength=n)}
    known = account >= 0
    pairs, pair = np.unique(
        theme[known].astype(np.int64) << 32 | account[known], return_inverse=True
    )  # one entry per (theme, account): its ARR counts once there (the largest on record)
    arr = np.zeros(len(pairs))
    np.maximum.at(arr, pair, revenue[known])  # ARR >= 0 (no ARR: 0)
    per_theme = (pairs >> 32).astype(np.intp)
    out["accounts"] = np.bincount(per_theme, minlength=n)
    out["revenue"] = _sums(per_theme, arr, n) + _sums(theme[~known], revenue[~known], n)
    sentiment = facts.sentiment[mask]
    has = ~np.isnan(sentiment)
    out["sentiment_sum"] = _sums(theme[has], sentiment[has], n)
    out["sentiment_n"] = np.bincount(theme[has], minlength=n)
    rating, scale = facts.rating[mask], facts.scale[mask]
    for code, name in enumerate(SCALES, start=1):
        rated = (scale == code) & ~np.isnan(rating)
        out[f"{name}_sum"] = _sums(theme[rated], rating[rated], n)
        out[f"{name}_n"] = np.bincount(theme[rated], minlength=n)
    return out


def columns(f: dict[str, np.ndarray], before: np.ndarray) -> dict[str, np.ndarray]:
    """Per theme (index of facts.theme_ids, plus a last all-empty slot): the ranking's figures;
    nan where a figure is undefined (no rating, no sentiment)."""

    def col(a: np.ndarray) -> np.ndarray:
        return np.append(a, 0).astype(np.float64)

    def mean(total: np.ndarray, n: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    items, previous = col(f["items"]), col(before)
    out = {
        "items": items,
        "previous_items": previous,
        "growth": np.round((items + 1) / (previous + 1) - 1, 4),
        "accounts": col(f["accounts"]),
        "revenue": np.round(col(f["revenue"]), 2),
        "sentiment": np.round(mean(col(f["sentiment_sum"]), col(f["sentiment_n"])), 4),
    }
    scaled = []
    for name in SCALES:
        out[f"{name}_n"] = col(f[f"{name}_n"])
        out[f"{name}_mean"] = np.round(mean(col(f[f"{name}_sum"]), out[f"{name}_n"]), 3)
        scaled.append(out[f"{name}_mean"] / (10.0 if name == "nps" else 5.0))
    rated = ~np.isnan(np.stack(scaled))
    out["rating_mean"] = np.round(
        mean(np.where(rated, np.stack(scaled), 0).sum(axis=0), rated.sum(axis=0)), 4
    )
    return out


def _row(theme: Any, cols: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    def value(name: str) -> float | None:
        v = float(cols[name][i])
        return None if np.isnan(v) else v

    ratings = {
        s: {"mean": float(cols[f"{s}_mean"][i]), "n": int(cols[f"{s}_n"][i])}
        for s in SCALES
        if cols[f"{s}_n"][i]
    }
    return {
        "theme": theme,
        "items": int(cols["items"][i]),
        "previous_items": int(cols["previous_items"][i]),
        "growth": float(cols["growth"][i]),
        "accounts": int(cols["accounts"][i]),
        "revenue": float(cols["revenue"][i]),
        "rating": ratings,
        "rating_mean": value("rating_mean"),
        "sentiment": value("sentiment"),
    }


def evidence(
    facts: Facts, theme_ids: Sequence[str], window: Window, k: int = 5
) -> dict[str, list[str]]:
    """The `k` most recent item ids of each theme in the window."""
    wanted = [facts.index(t) for t in theme_ids]
    rows = np.flatnonzero(window.mask(facts) & np.isin(facts.theme, wanted))
    order = rows[np.lexsort((-facts.ts[rows], facts.theme[rows]))]  # by theme, newest first
    themes = facts.theme[order]
    out = {}
    for tid in theme_ids:
        i = facts.index(tid)
        lo, hi = np.searchsorted(themes, i, "left"), np.searchsorted(themes, i, "right")
        out[tid] = [str(x) for x in facts.item_ids[facts.item[order[lo : min(hi, lo + k)]]]]
    return out


# --- trends


def trend(
    facts: Facts, theme_id: str, interval: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per bucket from `start` to `end`: items, distinct accounts, mean rating per scale."""
    if interval not in INTERVALS:
        raise InvalidInput(
            f"interval must be one of {list(INTERVALS)}, not {interval!r}", {"field": "interval"}
        )
    start, end = utc(start), utc(end)
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", {"field": "to"})
    starts = bucket_starts(start, end, interval)
    if len(starts) > MAX_BUCKETS:
        raise InvalidInput(f"{len(starts)} buckets; at most {MAX_BUCKETS}", {"field": "interval"})
    edges = np.array([b.timestamp() for b in starts] + [end.timestamp()])
    rows = np.flatnonzero((facts.theme == facts.index(theme_id)) & Window(start, end).mask(facts))
    bucket = np.searchsorted(edges, facts.ts[rows], "right") - 1
    return _bucket_figures(facts, rows, bucket, starts)


def bucket_starts(start: datetime, end: datetime, interval: str) -> list[datetime]:
    first = pd.Timestamp(start).floor("D")
    if interval == "week":
        first -= pd.Timedelta(days=first.weekday())
    elif interval == "month":
        first = first.replace(day=1)
    stamps = pd.date_range(first, end, freq=INTERVALS[interval], inclusive="left")
    if not len(stamps) or stamps[0] != first:
        stamps = stamps.insert(0, first)
    return [s.to_pydatetime() for s in stamps]


def _bucket_figures(
    facts: Facts, rows: np.ndarray, bucket: np.ndarray, starts: list[datetime]
) -> list[dict[str, Any]]:
    n = len(starts)
    items = np.bincount(bucket, minlength=n)
    known = facts.account[rows] >= 0
    pairs = np.unique(bucket[known].astype(np.int64) * (1 << 32) + facts.account[rows][known])
    accounts = np.bincount(pairs >> 32, minlength=n)
    ratings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for code, name in enumerate(SCALES, start=1):
        rated = (facts.scale[rows] == code) & ~np.isnan(facts.rating[rows])
        sums = np.bincount(bucket[rated], weights=facts.rating[rows][rated], minlength=n)
        ratings[name] = (sums, np.bincount(bucket[rated], minlength=n))
    return [
        {
            "start": starts[b],
            "items": int(items[b]),
            "accounts": int(accounts[b]),
            "rating": {
                s: {"mean": round(float(sums[b] / counts[b]), 3), "n": int(counts[b])}
                for s, (sums, counts) in ratings.items()
                if counts[b]
            },
        }
        for b in range(n)
    ]


# --- alerts


def alerts(
    facts: Facts,
    themes: Sequence[Any],
    at: datetime,
    window_days: int,
    baseline_days: int,
    alpha: float,
    min_items: int,
) -> list[dict[str, Any]]:
    from scipy.stats import hypergeom

    at = utc(at)
    split = at - timedelta(days=window_days)
    n = len(facts.theme_ids)
    in_now = Window(split, at).mask(facts)
    in_base = Window(split - timedelta(days=baseline_days), split).mask(facts)
    now = np.bincount(facts.theme[in_now], minlength=n)
    base = np.bincount(facts.theme[in_base], minlength=n)
    total_now, total_base = _distinct(facts.item[in_now]), _distinct(facts.item[in_base])
    live = [t for t in themes if t.status in ("active", "emerging")]
    history = _history_days(facts, split)
    out = []
    for theme in live:
        i = facts.index(theme.id)
        count, before = (int(now[i]), int(base[i])) if i >= 0 else (0, 0)
        population, theme_total = total_now + total_base, count + before
        expected = theme_total * total_now / population if population else 0.0
        p = float(hypergeom.sf(count - 1, population, theme_total, total_now)) if count else 1.0
        shares = (count / max(total_now, 1), before / max(total_base, 1))
        if theme.is_new and count > 0:  # emerged since the last refit, active in the window
            out.append(_alert("new_theme", theme, count, before, expected, p, shares))
        elif (
            history >= window_days
            and total_base > 0
            and count >= min_items
            and p < alpha / max(len(live), 1)
        ):
            out.append(_alert("spike", theme, count, before, expected, p, shares))
    ids = evidence(facts, [a["theme"].id for a in out], Window(split, at))
    for a in out:
        a["evidence"] = ids[a["theme"].id]
    return sorted(out, key=lambda a: (a["kind"] != "spike", a["p_value"]))


def _distinct(items: np.ndarray) -> int:
    """Distinct items among (item, theme) rows: an item in two themes counts once in a total."""
    return int(np.unique(items).size)


def _history_days(facts: Facts, split: datetime) -> float:
    """Days of feedback the workspace has before `split` (from its first item)."""
    if not len(facts):
        return 0.0
    return max((split.timestamp() - float(facts.ts.min())) / 86_400, 0.0)


def _alert(
    kind: str,
    theme: Any,
    count: int,
    base: int,
    expected: float,
    p: float,
    shares: tuple[float, float],
) -> dict:
    return {
        "kind": kind,
        "theme": theme,
        "items": count,
        "baseline_items": base,
        "expected": round(expected, 3),
        "ratio": round(count / expected, 3) if expected else None,
        "share": round(shares[0], 4),
        "baseline_share": round(shares[1], 4),
        "p_value": p,
    }


# --- the tree


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
        labels = fcluster(linkage(matrix, "average", metric="cosine"), 1.0 - threshold, "distance")
    groups: dict[int, list[Any]] = {}
    for theme, g in zip(placed, labels, strict=True):
        groups.setdefault(int(g), []).append(theme)
    return sorted((_group(members) for members in groups.values()), key=lambda g: -g["items"])


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
