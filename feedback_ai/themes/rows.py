"""Assignment rows: mentions -> one row per (item, theme), with the item's fields copied in.

Counting is by item: an item whose mentions land three times in a theme is one row there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd


def by_item(
    item_ids: Sequence[str], themes: np.ndarray, similarity: Any, sentiment: Any
) -> pd.DataFrame:
    """Mentions (theme index or -1 each) -> one row per (item, theme): counting is by item,
    however many of its mentions are in the theme."""
    frame = pd.DataFrame(
        {
            "item_id": np.asarray(item_ids, dtype=object),
            "theme": np.asarray(themes),
            "similarity": np.asarray(similarity, dtype=np.float64),
            "sentiment": np.asarray(sentiment, dtype=np.float64),
        }
    )
    return (
        frame[frame["theme"] >= 0]
        .groupby(["item_id", "theme"], sort=False)
        .agg(
            mentions=("similarity", "size"),
            similarity=("similarity", "max"),
            sentiment=("sentiment", "mean"),
        )
    )


def item_rows(
    workspace: str,
    grouped: pd.DataFrame,
    theme_ids: Sequence[str],
    fields_of: Callable[[str, Any], dict[str, dict[str, Any]]],
    origin: str,
) -> list[dict[str, Any]]:
    """`grouped` (index item_id, theme; columns mentions, similarity, sentiment) -> table rows,
    with the item's own fields (created_at, account, revenue, rating) copied in."""
    if grouped.empty:
        return []
    fields = fields_of(workspace, grouped.index.get_level_values(0).unique())
    rows = []
    for (item_id, theme), values in zip(
        grouped.index, grouped.itertuples(index=False), strict=True
    ):
        if item_id not in fields:  # deleted since it was stored
            continue
        sentiment = None if np.isnan(values.sentiment) else round(float(values.sentiment), 4)
        rows.append(
            {
                "workspace_id": workspace,
                "item_id": item_id,
                "theme_id": theme_ids[int(theme)],
                "mentions": int(values.mentions),
                "similarity": round(float(values.similarity), 4),
                "sentiment": sentiment,
                "origin": origin,
                **fields[item_id],
            }
        )
    return rows
