"""Diagnostic (sets no default): would a density-matched theme count fix the clusterer's count?

    python -m eval.themes_count        # ~5 min on 2 cores

The default clusterer (`GraphClusterer`) finds about the gold count at 30-45 items per theme
(CLINC150 test, BANKING77 test) and more themes with more items per theme (BANKING77 all: 245
for 77). This probes a rule that fixes the density instead: fit the default, and while the
corpus holds more than `S` items per theme found, refit on a seeded sample of S x themes items
(until the count moves by under 8%); the last count is the estimate. Then the whole corpus is
clustered at that count: Leiden at the resolution (bisection) whose refined theme count is within
5% of it, kNN size 0.3 x items per theme (as the default's rule). Reported for S = 40 and 60
on CLINC150 train (the tuning split) and on the held-out sets. Writes
eval/results/themes_count.{json,md}.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from eval.themes_quality import RESULTS, Corpus, corpora, scores, subsample
from feedback_ai.themes.cluster import GraphClusterer, neighbours_for

DENSITIES = (40, 60)
SETTLED = 0.08  # relative count change that ends the estimate
MAX_STEPS = 6


def estimate(X: np.ndarray, density: int, seed: int = 0) -> tuple[int, list[list[int]]]:
    """The theme count at about `density` items per theme, and the (items, themes) trail."""
    n, rng = len(X), np.random.default_rng(seed)
    themes = GraphClusterer(random_state=seed).fit(X).n_clusters_
    trail = [[n, themes]]
    for _ in range(MAX_STEPS):
        m = density * themes
        if m >= 0.9 * n:
            break
        rows = np.sort(rng.choice(n, m, replace=False))
        found = GraphClusterer(random_state=seed).fit(X[rows]).n_clusters_
        trail.append([m, found])
        settled = abs(found - themes) / themes < SETTLED
        themes = found
        if settled:
            break
    return themes, trail


def at_count(X: np.ndarray, target: int, seed: int = 0) -> GraphClusterer:
    """The default clusterer at a fixed resolution, bisected until the count is within 5%."""
    k = neighbours_for(len(X), target, 0.3, 60)
    lo, hi, best = float(np.log(0.5)), float(np.log(200.0)), None
    for _ in range(9):
        mid = (lo + hi) / 2
        model = GraphClusterer(
            n_neighbors=k, resolution=float(np.exp(mid)), neighbour_share=None, random_state=seed
        ).fit(X)
        if best is None or abs(model.n_clusters_ - target) < abs(best.n_clusters_ - target):
            best = model
        lo, hi = (mid, hi) if model.n_clusters_ < target else (lo, mid)
        if abs(model.n_clusters_ - target) <= 0.05 * target:
            break
    assert best is not None
    return best


def row(c: Corpus, density: int) -> dict[str, Any]:
    started = time.perf_counter()
    target, trail = estimate(c.vectors, density)
    model = at_count(c.vectors, target)
    return {
        "dataset": c.name,
        "density": density,
        "estimate": target,
        "trail": trail,
        "k": model.n_neighbors_,
        **scores(c.labels, model.labels_),
        "seconds": round(time.perf_counter() - started, 1),
        "tuning_data": c.includes_tuning_data,
    }


def main() -> None:
    by_name = {c.name: c for c in corpora()}
    train = by_name["clinc150 train (tuning split)"]
    sets = [train, subsample(train, 4500), *[c for c in by_name.values() if c is not train]]
    rows = []
    for density in DENSITIES:
        for c in sets:
            rows.append(row(c, density))
            print(rows[-1], flush=True)
    (RESULTS / "themes_count.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Density-matched theme count (diagnostic)",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        "| S | dataset | tuning data | estimate (trail: items -> themes) | themes / gold | k "
        "| NMI | ARI | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        trail = ", ".join(f"{n:,} -> {t}" for n, t in r["trail"])
        lines.append(
            f"| {r['density']} | {r['dataset']} | {'yes' if r['tuning_data'] else 'no'} "
            f"| {r['estimate']} ({trail}) | {r['themes']} / {r['gold']} | {r['k']} "
            f"| {r['nmi']:.3f} | {r['ari']:.3f} | {r['seconds']} |"
        )
    (RESULTS / "themes_count.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
