"""Volume alerts on dated app reviews against each version's changelog (a weak ground truth).

Data: ../shared/data/idea-app-reviews-timeseries (IDEA, Gao et al. ICSE 2018): reviews with a
date, a star rating and the app version they were written against; one changelog line per app
version (comma-separated topics; the i-th line belongs to the i-th version in version order).

Per app (SwiftKey, Viber, NOAA Radar):
1. ingest every review (date, stars, version in metadata) through the product's ingest path and
   refit its themes once (a retrospective analysis: themes as the app's whole history shows them);
2. every 7 days along the timeline, ask the product's alert function (`GET /v1/themes/alerts`
   with the defaults: 7-day window, 28-day baseline, a theme's share of all items tested with
   Fisher's exact test, Bonferroni over themes);
3. each spike alert belongs to the version most reviewed in its window; it is a hit when the
   theme's top-10 keywords share words with a changelog topic of that version or the next one
   (release notes of the next version tend to fix what the reviews of this one raise): at
   least two words, or the only word of a one-word topic (stop words and words under 3
   letters ignored).
Reported: alerts raised, precision of spike alerts, and the chance level: the share of all
(theme, week) pairs, alert or not, that would be hits under the same rule.

The review texts were lower-cased and lemmatised by the dataset's authors, which degrades the
embeddings; the changelog topics are keywords, not per-review labels. Treat the figures as a
sanity check that alerts point at things the app team later acted on, not as a benchmark.
Run: `python -m eval.themes_trends` -> eval/results/themes_trends.{json,md}.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eval.corpus import ROOT, SHARED
from eval.themes_registry import WORKSPACE, build

DATA = SHARED / "idea-app-reviews-timeseries"
APPS = {
    "swiftkey": ("swiftkey_keyboard", "changelog_swiftkey.txt"),
    "viber": ("viber", "changelog_viber.txt"),
    "noaa_radar": ("noaa-radar-pro-severe-weather", "changelog_radar.txt"),
}
RESULTS = ROOT / "eval" / "results"
_WORD = re.compile(r"[a-z]{3,}")


@dataclass
class Review:
    text: str
    stars: float
    date: datetime
    version: str


def reviews(folder: str) -> list[Review]:
    out = []
    for line in (DATA / folder / "total_info.txt").read_text(errors="replace").splitlines():
        f = line.split("******")
        if len(f) == 4:  # android: rating, text, date, version
            date = datetime.strptime(f[2].strip(), "%Y-%m-%d")
            version = f[3].strip()
        elif len(f) == 6:  # ios: rating, text, title, date, version, country
            date = datetime.strptime(f[3].strip(), "%b %d, %Y")
            version = f[4].strip()
        else:
            continue
        if f[1].strip():
            out.append(Review(f[1].strip(), float(f[0]), date.replace(tzinfo=UTC), version))
    return out


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)) or (10**9,)


def changelog(folder: str, name: str, versions: list[str]) -> dict[str, list[set[str]]]:
    """version -> its topics, each a set of content words."""
    from feedback_ai.themes.labels import _stop_words

    stop = _stop_words()
    lines = (DATA / folder / name).read_text().splitlines()
    out: dict[str, list[set[str]]] = {}
    for version, line in zip(versions, lines, strict=False):
        topics = [set(_WORD.findall(t.lower())) - stop for t in line.split(",")]
        out[version] = [t for t in topics if t]
    return out


def hit(keywords: list[str], topics: list[set[str]]) -> bool:
    words = {w for kw in keywords[:10] for w in kw.split()}
    return any(len(words & t) >= min(2, len(t)) for t in topics)


def run_app(app: str) -> dict[str, Any]:
    folder, log_name = APPS[app]
    revs = reviews(folder)
    versions = sorted({r.version for r in revs if r.version != "Unknown"}, key=version_key)
    notes = changelog(folder, log_name, versions)
    nxt = {v: versions[i + 1] for i, v in enumerate(versions[:-1])}
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), [r.text for r in revs])
        items = [
            {
                "text": r.text,
                "source": "app_store",
                "created_at": r.date.isoformat(),
                "rating": r.stars,
                "rating_scale": "stars",
                "metadata": {"version": r.version},
            }
            for r in revs
        ]
        for start in range(0, len(items), 1000):
            service.submit(WORKSPACE, items[start : start + 1000], service.process)
        refit = service.themes.refit(WORKSPACE)
        result = evaluate(service, revs, notes, nxt)
        service.close()
    return {"app": app, "reviews": len(revs), "versions": len(versions), "refit": refit, **result}


def evaluate(
    service: Any, revs: list[Review], notes: dict[str, list[set[str]]], nxt: dict[str, str]
) -> dict[str, Any]:
    from feedback_ai.themes import read

    themes = {t.id: t for t in service.themes.db.themes(WORKSPACE)}
    start = min(r.date for r in revs) + timedelta(days=35)
    end = max(r.date for r in revs) + timedelta(days=1)
    alerts, chance = [], []
    at = start
    while at <= end:
        window = [r.version for r in revs if at - timedelta(days=7) <= r.date < at]
        if window:
            version = Counter(window).most_common(1)[0][0]
            topics = notes.get(version, []) + notes.get(nxt.get(version, ""), [])
            found = read.alerts(service.themes, WORKSPACE, at).alerts
            for a in found:
                if a.kind == "spike":
                    good = hit(themes[a.theme_id].keywords, topics)
                    alerts.append(_row(at, version, a, themes[a.theme_id], good))
            chance += [hit(t.keywords, topics) for t in themes.values() if topics]
        at += timedelta(days=7)
    hits = sum(a["hit"] for a in alerts)
    return {
        "spike_alerts": len(alerts),
        "hits": hits,
        "precision": round(hits / len(alerts), 4) if alerts else None,
        "chance": round(sum(chance) / len(chance), 4) if chance else None,
        "alerts": alerts,
    }


def _row(at: datetime, version: str, alert: Any, theme: Any, good: bool) -> dict[str, Any]:
    return {
        "at": at.date().isoformat(),
        "version": version,
        "theme": theme.label,
        "keywords": theme.keywords[:10],
        "items": alert.items,
        "expected": alert.expected,
        "share": alert.share,
        "baseline_share": alert.baseline_share,
        "hit": good,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Volume alerts vs changelogs (IDEA app reviews)",
        "",
        "Reproduce: `python -m eval.themes_trends`. How alerts are matched to changelog topics: "
        "see the module docstring (a weak ground truth).",
        "",
        "| app | reviews | versions | themes | spike alerts | hits | precision | chance level |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['app']} | {r['reviews']} | {r['versions']} | {r['refit']['themes']} | "
            f"{r['spike_alerts']} | {r['hits']} | {r['precision']} | {r['chance']} |"
        )
    for r in results:
        lines += [
            "",
            f"## {r['app']}",
            "",
            "| week ending | version | theme | keywords | items | expected | share | before "
            "| hit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for a in r["alerts"]:
            lines.append(
                f"| {a['at']} | {a['version']} | {a['theme']} | {', '.join(a['keywords'][:5])} "
                f"| {a['items']} | {a['expected']} | {a['share']:.3f} | {a['baseline_share']:.3f} "
                f"| {'yes' if a['hit'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    results = [run_app(app) for app in APPS]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "themes_trends.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / "themes_trends.md").write_text(markdown(results))
    print(markdown(results).split("\n## ")[0])


if __name__ == "__main__":
    main()
