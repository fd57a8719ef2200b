"""Assignment rows: counting by item, best similarity, mean sentiment over scored mentions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from feedback_ai.themes.rows import by_item, item_rows


def test_by_item_counts_an_item_once_per_theme() -> None:
    grouped = by_item(
        ["a", "a", "a", "b", "b", "c"],
        np.array([0, 0, 1, 1, -1, -1]),
        [0.5, 0.9, 0.7, 0.6, 0.99, 0.99],
        [0.2, np.nan, -0.4, np.nan, 0.1, 0.1],
    )
    got = {
        (i, int(t)): (int(m), float(s), float(e))
        for i, t, m, s, e in zip(
            grouped.item_ids,
            grouped.theme,
            grouped.mentions,
            grouped.similarity,
            grouped.sentiment,
            strict=True,
        )
    }
    assert set(got) == {("a", 0), ("a", 1), ("b", 1)}  # c had no assigned mention
    assert got[("a", 0)][:2] == (2, 0.9)  # two mentions, the best similarity
    assert got[("a", 0)][2] == 0.2  # the unscored mention does not pull the mean
    assert np.isnan(got[("b", 1)][2])  # no scored mention there: no sentiment
    assert len(by_item([], np.array([], dtype=int), [], [])) == 0


def test_item_rows_copy_fields_and_skip_deleted_items() -> None:
    grouped = by_item(["a", "gone"], np.array([1, 0]), [0.8, 0.7], [np.nan, 0.5])
    at = datetime(2026, 11, 1, tzinfo=UTC)

    def fields(workspace: str, ids: object) -> dict[str, dict[str, object]]:
        assert workspace == "ws" and list(ids) == ["a", "gone"]  # type: ignore[call-overload]
        return {"a": {"created_at": at, "account_id": "acme"}}

    rows = item_rows("ws", grouped, ["t0", "t1"], fields, "live")
    assert rows == [
        {
            "workspace_id": "ws",
            "item_id": "a",
            "theme_id": "t1",
            "mentions": 1,
            "similarity": 0.8,
            "sentiment": None,
            "origin": "live",
            "created_at": at,
            "account_id": "acme",
        }
    ]
