"""Does anything in the data say how many themes there are? A diagnostic that sets no default.

    python -m eval.themes_signals

Leiden's theme count is set by its resolution. The clusterer picks the resolution with a
self-consistent rule (see feedback_ai/themes/cluster.py). This script sweeps the resolution on one
fixed graph per corpus: the fuzzy kNN graph at k = 15, the kNN size the default reaches on
BANKING77 all. At each resolution it reports the signals a rule could read without the gold labels:
- themes found;
- seed stability: the mean ARI between Leiden runs with seeds 0-3;
- the cosine silhouette of the communities (clusters under 5 items go to the nearest centroid).
Next to them are NMI and ARI against gold, so a reader can see where each signal would have led.
A signal can pick the count only if it peaks near the gold count on every corpus.

Corpora: CLINC150 train (the tuning split), CLINC150 test (in scope), BANKING77 test and all.
Writes eval/results/themes_signals.{json,md}.
"""

from __future__ import annotations

import json
import os
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from eval.hostinfo import cpu, describe
from eval.themes_quality import RESULTS, Corpus, corpora
from feedback_ai.themes import cluster as C

K = 15
RESOLUTIONS = np.geomspace(0.5, 20.0, 12)
SEEDS = 4
ON = (
    "clinc150 train (tuning split)",
    "clinc150 test (in scope)",
    "banking77 test",
    "banking77 all",
)


def sweep(c: Corpus) -> list[dict[str, Any]]:
    X = C.normalise(c.vectors)
    graph = C.fuzzy_graph(*C.knn(X, K))
    rows = []
    for res in RESOLUTIONS:
        runs = [C.leiden(graph, float(res), seed) for seed in range(SEEDS)]
        labels, _ = C.settle(X, runs[0].copy(), 5)
        row = {
            "resolution": round(float(res), 3),
            "themes": int(labels.max()) + 1,
            "seed_ari": round(
                float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(runs, 2)])), 3
            ),
            "silhouette": round(float(silhouette_score(X, labels, metric="cosine")), 4),
            "nmi": round(float(normalized_mutual_info_score(c.labels, labels)), 3),
            "ari": round(float(adjusted_rand_score(c.labels, labels)), 3),
        }
        print(c.name, row, flush=True)
        rows.append(row)
    return rows


def run() -> dict[str, Any]:
    found = {c.name: c for c in corpora()}
    out: dict[str, Any] = {"host": cpu(), "k": K, "loadavg_start": os.getloadavg()}
    out["corpora"] = [
        {"dataset": name, "gold": int(found[name].labels.max()) + 1, "rows": sweep(found[name])}
        for name in ON
    ]
    out["loadavg_end"] = os.getloadavg()
    return out


def render(res: dict[str, Any]) -> str:
    lines = [
        "# Signals for the theme count (diagnostic)",
        "",
        INTRO,
        "",
        f"Host: {describe(res['host'])}.",
        "",
    ]
    for part in res["corpora"]:
        rows = part["rows"]
        best = {
            key: max(rows, key=lambda r: r[key])["themes"]
            for key in ("seed_ari", "silhouette", "ari")
        }
        lines += [f"## {part['dataset']} (gold: {part['gold']} intents)", ""]
        lines += [
            f"Largest seed ARI at {best['seed_ari']} themes, largest silhouette at "
            f"{best['silhouette']}, largest ARI against gold at {best['ari']}.",
            "",
            "| resolution | themes | seed ARI | silhouette | NMI | ARI |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['resolution']:.2f} | {r['themes']} | {r['seed_ari']:.3f} | "
            f"{r['silhouette']:.4f} | {r['nmi']:.3f} | {r['ari']:.3f} |"
            for r in rows
        ]
        lines.append("")
    load = ", ".join(f"{x:.1f}" for x in res["loadavg_start"])
    return "\n".join([*lines, f"Load average at start: {load} (2 cores, shared).", ""])


INTRO = (
    f"Leiden (RB configuration modularity) on the fuzzy kNN graph at k = {K}, swept over the "
    "resolution; the product's vectors; communities only, no centroid refinement. Seed ARI is the "
    f"mean ARI between Leiden runs with seeds 0-{SEEDS - 1}. Silhouette is cosine. NMI and ARI "
    "use the gold intents and are shown only to judge the signals. Reproduce: "
    "`python -m eval.themes_signals`."
)


def main() -> None:
    res = run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "themes_signals.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "themes_signals.md").write_text(render(res))


if __name__ == "__main__":
    main()
