"""How the theme count and quality move with the kNN graph size, and what any centroid method
can reach on these vectors: a diagnostic for the BANKING77 misses in themes_quality.

    python -m eval.themes_sweep        # ~15 min on 2 cores

For each corpus and each fixed kNN size k (`GraphClusterer(graph="cosine", n_neighbors=k,
neighbour_share=None)`: the plain cosine kNN graph, the default until stop 23, at the
self-consistent resolution, no adaptive k): themes found, k x themes
/ N, NMI, ARI, and the ARI between a seed-0 fit and a seed-1 fit on a shuffled copy. Ceilings
use the gold labels (so they are not methods, only bounds): every item to its gold intent's
centroid, and k-means told the gold count. Nothing here sets a default: the clusterer's defaults
were chosen on CLINC150 train (see feedback_ai/themes/cluster.py). Writes
eval/results/themes_sweep.{json,md}.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from eval.themes_quality import RESULTS, Corpus, corpora, scores
from feedback_ai.themes.cluster import GraphClusterer, centroids, nearest, normalise

KS = (6, 8, 10, 13, 16, 20, 25, 30)
ON = (
    "clinc150 train (tuning split)",
    "clinc150 test (in scope)",
    "banking77 test",
    "banking77 all",
)


def sweep_row(c: Corpus, k: int) -> dict[str, Any]:
    perm = np.random.default_rng(1).permutation(len(c.vectors))
    fixed: dict[str, Any] = {"graph": "cosine", "n_neighbors": k, "neighbour_share": None}
    first = GraphClusterer(random_state=0, **fixed).fit(c.vectors)
    second = GraphClusterer(random_state=1, **fixed)
    shuffled = second.fit(c.vectors[perm]).labels_
    back = np.empty_like(shuffled)
    back[perm] = shuffled
    s = scores(c.labels, first.labels_)
    return {
        "dataset": c.name,
        "k": k,
        **s,
        "k_themes_over_n": round(k * s["themes"] / len(c.vectors), 3),
        "seed_ari": round(float(adjusted_rand_score(first.labels_, back)), 4),
    }


def ceilings(c: Corpus) -> dict[str, Any]:
    X = normalise(c.vectors)
    gold_centroid = nearest(X, centroids(X, c.labels))[0]
    k = len(set(c.labels.tolist()))
    oracle = KMeans(k, n_init=3, random_state=0).fit(X).labels_
    return {
        "dataset": c.name,
        "gold_centroids": scores(c.labels, gold_centroid),
        "kmeans_gold_k": scores(c.labels, oracle),
    }


def render(res: dict[str, Any]) -> str:
    out = ["# Theme count and quality against the kNN size", "", __doc__.split("\n\n")[2], ""]
    out += ["| dataset | k | themes / gold | k x themes / N | NMI | ARI | seed ARI |"]
    out += ["|---|---|---|---|---|---|---|"]
    for r in res["sweep"]:
        out.append(
            f"| {r['dataset']} | {r['k']} | {r['themes']} / {r['gold']} | {r['k_themes_over_n']}"
            f" | {r['nmi']:.3f} | {r['ari']:.3f} | {r['seed_ari']:.3f} |"
        )
    out += ["", "## Ceilings (told the gold labels)", ""]
    out += ["| dataset | gold centroids NMI / ARI | k-means, gold k: NMI / ARI |", "|---|---|---|"]
    for r in res["ceilings"]:
        g, m = r["gold_centroids"], r["kmeans_gold_k"]
        out.append(
            f"| {r['dataset']} | {g['nmi']:.3f} / {g['ari']:.3f}"
            f" | {m['nmi']:.3f} / {m['ari']:.3f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    chosen = [c for c in corpora() if c.name in ON]
    res: dict[str, Any] = {"sweep": [], "ceilings": []}
    for c in chosen:
        res["ceilings"].append(ceilings(c))
        for k in KS:
            res["sweep"].append(row := sweep_row(c, k))
            print(row, flush=True)
    (RESULTS / "themes_sweep.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / "themes_sweep.md").write_text(render(res))


if __name__ == "__main__":
    main()
