"""Rankings, trends and alerts over in-memory facts: the arithmetic, on hand-made rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedback_ai.errors import InvalidInput
from feedback_ai.themes import analytics
from feedback_ai.themes.facts import Facts, FactsCache

END = datetime(2026, 3, 31, tzinfo=UTC)


@dataclass
class T:
    id: str
    status: str = "active"
    is_new: bool = False
    keywords: tuple[str, ...] = ()
    items: int = 0
    label: str = ""


def row(theme: str, item: str, days_ago: float, account: str | None = None, **kw: Any) -> tuple:
    ts = (END - timedelta(days=days_ago)).timestamp()
    return (
        theme,
        item,
        ts,
        account,
        kw.get("revenue"),
        kw.get("rating"),
        kw.get("scale"),
        kw.get("sentiment"),
    )


def facts(rows: list[tuple]) -> Facts:
    return Facts.from_rows(1, 0, rows)


def test_ranking_counts_items_accounts_and_revenue_once_per_account() -> None:
    rows = [
        row("a", "i1", 1, "acme", revenue=100.0, rating=9.0, scale="nps", sentiment=0.5),
        row("a", "i2", 2, "acme", revenue=100.0, rating=3.0, scale="nps", sentiment=-0.5),
        row("a", "i3", 3, "globex", revenue=50.0, rating=4.0, scale="stars"),
        row("a", "i4", 4, None, revenue=7.0),  # no account: its ARR counts alone
        row("a", "i5", 45, "acme", revenue=100.0),  # the previous window
        row("b", "i1", 1, "acme", revenue=100.0),  # the same item in another theme
        row("b", "i6", 40, "initech"),
        row("n", "i7", 1, "acme"),
    ]
    themes = [T("a"), T("b"), T("n", status="noise"), T("empty")]
    ranked = analytics.ranking(facts(rows), themes, timedelta(days=30), END)
    by_id = {r["theme"].id: r for r in ranked}
    a = by_id["a"]
    assert [r["theme"].id for r in ranked] == ["a", "b", "empty"]  # noise left out
    assert (a["items"], a["previous_items"], a["accounts"], a["revenue"]) == (4, 1, 2, 157.0)
    assert a["growth"] == pytest.approx((4 + 1) / (1 + 1) - 1)
    assert a["rating"] == {"nps": {"mean": 6.0, "n": 2}, "stars": {"mean": 4.0, "n": 1}}
    assert a["rating_mean"] == pytest.approx((0.6 + 0.8) / 2)
    assert a["sentiment"] == 0.0
    assert (by_id["b"]["items"], by_id["b"]["previous_items"]) == (1, 1)
    assert by_id["empty"]["items"] == 0 and by_id["empty"]["sentiment"] is None
    growth = analytics.ranking(facts(rows), themes, timedelta(days=30), END, "growth")
    assert growth[0]["theme"].id == "a"
    worst = analytics.ranking(facts(rows), themes, timedelta(days=30), END, "sentiment")
    assert worst[-1]["sentiment"] is None  # themes without sentiment come last


def test_ranking_without_any_account_rating_or_sentiment() -> None:
    # Feedback with no account, ARR, rating or sentiment (a plain CSV of texts): once a 500.
    rows = [row("a", "i1", 1), row("a", "i2", 2, revenue=30.0), row("b", "i3", 3)]
    ranked = analytics.ranking(facts(rows), [T("a"), T("b")], timedelta(days=30), END)
    a = ranked[0]
    assert (a["theme"].id, a["items"], a["accounts"], a["revenue"]) == ("a", 2, 0, 30.0)
    assert a["sentiment"] is None and a["rating"] == {}
    assert ranked[1]["revenue"] == 0.0


def test_evidence_is_the_newest_items_of_the_window() -> None:
    rows = [row("a", f"i{d}", d) for d in (3, 1, 9, 40, 2)]
    found = analytics.evidence(
        facts(rows), ["a", "zz"], analytics.Window(END - timedelta(days=30), END), k=3
    )
    assert found == {"a": ["i1", "i2", "i3"], "zz": []}


def test_trend_buckets_by_week_with_distinct_accounts_and_ratings() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    rows = [
        ("a", "i1", (start + timedelta(days=1)).timestamp(), "x", None, 8.0, "nps", None),
        ("a", "i2", (start + timedelta(days=2)).timestamp(), "x", None, 6.0, "nps", None),
        ("a", "i3", (start + timedelta(days=8)).timestamp(), "y", None, None, None, None),
        ("b", "i4", (start + timedelta(days=8)).timestamp(), "z", None, None, None, None),
    ]
    buckets = analytics.trend(facts(rows), "a", "week", start, start + timedelta(days=21))
    assert [b["start"] for b in buckets] == [start + timedelta(weeks=w) for w in range(3)]
    assert [(b["items"], b["accounts"]) for b in buckets] == [(2, 1), (1, 1), (0, 0)]
    assert buckets[0]["rating"] == {"nps": {"mean": 7.0, "n": 2}} and buckets[1]["rating"] == {}
    months = analytics.trend(facts(rows), "a", "month", start, start + timedelta(days=40))
    assert [b["start"].day for b in months] == [1, 1] and sum(b["items"] for b in months) == 3
    with pytest.raises(InvalidInput, match="interval"):
        analytics.trend(facts(rows), "a", "hour", start, END)
    with pytest.raises(InvalidInput, match="after"):
        analytics.trend(facts(rows), "a", "day", END, start)


def test_alerts_flag_a_spike_against_the_baseline_and_new_themes() -> None:
    rows = [row("steady", f"s{d}", d) for d in range(1, 36)]  # one item a day, 35 days back
    rows += [row("spiky", f"p{i}", 0.5 + i / 10) for i in range(25)]  # 25 in the last week
    rows += [row("spiky", f"q{d}", d) for d in range(8, 35, 4)]  # a few before
    rows += [row("fresh", "f1", 2)]
    themes = [T("steady"), T("spiky"), T("fresh", status="emerging", is_new=True)]
    found = analytics.alerts(facts(rows), themes, END, 7, 28, 0.01, 5)
    assert [(a["kind"], a["theme"].id) for a in found] == [
        ("spike", "spiky"),
        ("new_theme", "fresh"),
    ]
    spike = found[0]
    assert spike["items"] == 25 and spike["baseline_items"] == 7
    # window: 7 steady + 25 spiky + 1 fresh = 33 items; baseline: 28 steady + 7 spiky = 35
    assert spike["expected"] == pytest.approx((25 + 7) * 33 / 68, abs=1e-3)
    assert spike["share"] == pytest.approx(25 / 33, abs=1e-4)
    assert spike["baseline_share"] == pytest.approx(7 / 35, abs=1e-4)
    from scipy.stats import fisher_exact

    _, p = fisher_exact([[25, 33 - 25], [7, 35 - 7]], alternative="greater")
    assert spike["p_value"] == pytest.approx(p) and p < 0.01 / 3
    assert len(spike["evidence"]) == 5


def test_a_surge_of_all_feedback_is_no_spike_but_a_theme_outgrowing_it_is() -> None:
    # Three themes at 2 items a day for four weeks; in the last week every theme triples.
    rows = [
        row(t, f"{t}{d}-{k}", d + k / 10) for t in "abc" for d in range(7, 35) for k in range(2)
    ]
    surge = [row(t, f"{t}new{i}", 0.5 + i / 7) for t in "abc" for i in range(42)]
    themes = [T("a"), T("b"), T("c")]
    assert analytics.alerts(facts(rows + surge), themes, END, 7, 28, 0.01, 5) == []
    # The same surge where "a" alone grows twice as fast again: only "a" spikes.
    more = [row("a", f"amore{i}", 0.5 + i / 10) for i in range(42)]
    found = analytics.alerts(facts(rows + surge + more), themes, END, 7, 28, 0.01, 5)
    assert [(a["kind"], a["theme"].id) for a in found] == [("spike", "a")]


def test_no_spikes_without_a_week_of_history_before_the_window() -> None:
    first_week = [row("a", f"a{i}", 0.5 + i / 10) for i in range(20)]  # a new workspace
    first_week += [row("b", f"b{i}", 0.5 + i / 2) for i in range(4)]
    # 10 items of "b" over 5 days before the window: "a" went from 0% to 83% of the items
    almost = first_week + [row("b", f"old{i}", 7.5 + i / 2) for i in range(10)]
    for rows in (first_week, almost):
        assert analytics.alerts(facts(rows), [T("a"), T("b")], END, 7, 28, 0.01, 5) == []
    enough = first_week + [row("b", f"old{i}", 7.5 + i) for i in range(10)]  # over 9.5 days
    found = analytics.alerts(facts(enough), [T("a"), T("b")], END, 7, 28, 0.01, 5)
    assert [a["theme"].id for a in found] == ["a"]


def test_windows_must_parse() -> None:
    assert analytics.parse_window("30d") == timedelta(days=30)
    assert analytics.parse_window("12w") == timedelta(weeks=12)
    for bad in ("", "0d", "thirty", "3m", "-5d"):
        with pytest.raises(InvalidInput, match="window"):
            analytics.parse_window(bad)


def test_the_cache_reloads_on_a_new_version_and_refreshes_rows_in_the_background() -> None:
    stamps = {"v": (1, 0)}
    loads: list[int] = []

    def load(ws: str) -> list[tuple]:
        loads.append(1)
        return [row("a", f"i{len(loads)}", 1)]

    cache = FactsCache(lambda ws: stamps["v"], load, lambda ws: [], max_age_s=0)
    first = cache.get("w")
    assert cache.get("w") is first and len(loads) == 1  # nothing changed
    stamps["v"] = (2, 0)  # a refit: reloaded before answering
    assert cache.get("w").version == 2 and len(loads) == 2
    stamps["v"] = (2, 1)  # a live assignment: the loaded rows answer, a reload runs behind
    stale = cache.get("w")
    assert stale.rows_version == 0
    for _ in range(100):
        if cache.get("w").rows_version == 1:
            break
        __import__("time").sleep(0.01)
    assert cache.get("w").rows_version == 1 and len(loads) == 3
