"""Theme clustering at scale: fit on a seeded sample, assign the rest; wall time and peak RSS.

    python -m eval.bench_themes --n 100000
    python -m eval.bench_themes --n 1000000

Vectors: `eval.corpus.real_texts()` (89,356 distinct real short texts: BANKING77, CLINC150,
app reviews, bug-report summaries) embedded once with the default embedder (all-MiniLM-L6-v2,
ONNX int8; cached), then `eval.corpus.replicate(vectors, n)`: the real vectors first, then
copies of real vectors drawn at random (seed 0) with Gaussian noise of sigma 0.05/sqrt(384) per
dimension, re-normalised (cosine to the original about 0.999). So 1M vectors hold the 89k real
ones about 11 times over, slightly perturbed. They are built once by a child process and saved
under eval/cache/, so building them does not count in the measured process.

The measured process loads the vectors (counted in its peak RSS, reported apart), then runs
`fit_sample_assign` with the defaults: `GraphClusterer` fitted on a seeded sample of
`SAMPLE_SIZE` rows, every row labelled by its nearest centroid in chunks. Peak RSS is the
process's ru_maxrss. Results are merged into eval/results/bench_themes.json (one entry per N)
and rendered as bench_themes.md, with the load average: the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.corpus import CACHE, real_texts, replicate
from feedback_ai.themes.cluster import SAMPLE_SIZE, fit_sample_assign

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {100_000: (180.0, 4.0), 1_000_000: (1200.0, 8.0)}  # seconds, GB


def vectors_path(n: int) -> Path:
    return CACHE / f"bench_themes_{n}.npy"


def prepare(n: int) -> None:
    """Embed the real texts (cached) and save n replicated vectors."""
    from eval import labelled as L

    real = L.embed(real_texts())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(vectors_path(n), replicate(real, n))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def measure(n: int) -> dict[str, Any]:
    load_start = os.getloadavg()
    X = np.load(vectors_path(n))
    data_gb = peak_rss_gb()
    start = time.perf_counter()
    labels, model, sample = fit_sample_assign(X, sample_size=SAMPLE_SIZE, random_state=0)
    total = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(X)  # timed again on its own: the assignment's share of the total
    assign = time.perf_counter() - start
    sizes = np.bincount(labels[labels >= 0])
    return {
        "n": n,
        "sample": len(sample),
        "fit_and_assign_s": round(total, 1),
        "assign_s": round(assign, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "rss_after_loading_vectors_gb": round(data_gb, 2),
        "themes": int(model.n_clusters_),
        "n_neighbors": int(model.n_neighbors_),
        "resolution": round(float(model.resolution_), 2),
        "largest_theme_share": round(float(sizes.max() / n), 4),
        "coverage": round(float((labels >= 0).mean()), 4),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "meets": meets(n, total, peak_rss_gb()),
    }


def meets(n: int, seconds: float, gb: float) -> bool | None:
    if n not in TARGETS:
        return None
    return seconds <= TARGETS[n][0] and gb <= TARGETS[n][1]


def render(results: dict[str, Any]) -> str:
    lines = ["# Theme clustering at scale", "", NOTE, ""]
    lines += ["| N | sample | fit + assign s | peak RSS GB (vectors alone) | themes | load avg |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in sorted(results.values(), key=lambda r: r["n"]):
        load = "/".join(f"{x:.1f}" for x in r["loadavg_start"])
        lines.append(
            f"| {r['n']:,} | {r['sample']:,} | {r['fit_and_assign_s']} (assign {r['assign_s']}) | "
            f"{r['peak_rss_gb']} ({r['rss_after_loading_vectors_gb']}) | {r['themes']} | {load} |"
        )
    return "\n".join([*lines, ""])


NOTE = (
    "`fit_sample_assign` with the defaults on real(-replicated) vectors (see the docstring of "
    "eval/bench_themes.py for how they are made). Targets: 100k <= 180 s and <= 4 GB; 1M <= "
    "1,200 s and <= 8 GB. Load average (1/5/15 min) at the start: the 2 cores are shared. "
    "Reproduce: `python -m eval.bench_themes --n 100000` (and `--n 1000000`)."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--prepare", action="store_true", help="only build the vectors")
    args = parser.parse_args()
    if args.prepare:
        return prepare(args.n)
    if not vectors_path(args.n).exists():
        cmd = [sys.executable, "-m", "eval.bench_themes", "--n", str(args.n), "--prepare"]
        subprocess.run(cmd, check=True)
    row = measure(args.n)
    print(json.dumps(row), flush=True)
    path = RESULTS / "bench_themes.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[str(args.n)] = row
    path.write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "bench_themes.md").write_text(render(results))


if __name__ == "__main__":
    main()
