"""Assignment rows: mentions -> one row per (item, theme), with the item's fields copied in.

Counting is by item: an item whose mentions land three times in a theme is one row there.
Plain numpy (no pandas groupby): live assignment calls this for every ingest part of a few dozen
mentions, where a DataFrame groupby cost more than the assignment itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ItemThemes:
    """One entry per (item, theme): mentions there, their best similarity, mean sentiment."""

    item_ids: np.ndarray  # object
    theme: np.ndarray  # int64, index into the caller's theme ids
    mentions: np.ndarray  # int64
    similarity: np.ndarray  # float64, the best of the item's mentions in the theme
    sentiment: np.ndarray  # float64, mean over mentions that have one; nan when none has

    def __len__(self) -> int:
        return len(self.theme)

    def part(self, rows: slice) -> ItemThemes:
        return ItemThemes(
            self.item_ids[rows],
            self.theme[rows],
            self.mentions[rows],
            self.similarity[rows],
            self.sentiment[rows],
        )


def by_item(
    item_ids: Sequence[str], themes: np.ndarray, similarity: Any, sentiment: Any
) -> ItemThemes:
    """Mentions (theme index or -1 each) -> one entry per (item, theme): counting is by item,
    however many of its mentions are in the theme. Unassigned mentions (-1) are left out."""
    themes = np.asarray(themes, dtype=np.int64)
    keep = themes >= 0
    codes, uniques = pd.factorize(np.asarray(item_ids, dtype=object)[keep])
    width = int(themes.max()) + 1 if keep.any() else 1
    keys, group = np.unique(codes.astype(np.int64) * width + themes[keep], return_inverse=True)
    best = np.full(len(keys), -np.inf)
    np.maximum.at(best, group, np.asarray(similarity, dtype=np.float64)[keep])
    scores = np.asarray(sentiment, dtype=np.float64)[keep]
    has = ~np.isnan(scores)
    scored = np.bincount(group[has], minlength=len(keys))
    total = np.bincount(group[has], weights=scores[has], minlength=len(keys))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(scored > 0, total / np.maximum(scored, 1), np.nan)
    return ItemThemes(
        item_ids=np.asarray(uniques, dtype=object)[keys // width],
        theme=keys % width,
        mentions=np.bincount(group, minlength=len(keys)),
        similarity=best,
        sentiment=mean,
    )


def item_rows(
    workspace: str,
    grouped: ItemThemes,
    theme_ids: Sequence[str],
    fields_of: Callable[[str, Any], dict[str, dict[str, Any]]],
    origin: str,
) -> list[dict[str, Any]]:
    """`grouped` -> table rows, with the item's own fields (created_at, account, revenue,
    rating) copied in."""
    if not len(grouped):
        return []
    fields = fields_of(workspace, dict.fromkeys(grouped.item_ids.tolist()))
    rows = []
    for k, item_id in enumerate(grouped.item_ids.tolist()):
        if item_id not in fields:  # deleted since it was stored
            continue
        sentiment = grouped.sentiment[k]
        rows.append(
            {
                "workspace_id": workspace,
                "item_id": item_id,
                "theme_id": theme_ids[int(grouped.theme[k])],
                "mentions": int(grouped.mentions[k]),
                "similarity": round(float(grouped.similarity[k]), 4),
                "sentiment": None if np.isnan(sentiment) else round(float(sentiment), 4),
                "origin": origin,
                **fields[item_id],
            }
        )
    return rows
