"""How far 5-shot matching is from what the embedding model allows, and where the gap comes from.

Run: `.venv/bin/python -m eval.match_ceiling [--seeds 5]` -> `eval/results/match_ceiling.{json,md}`.

Same tasks and splits as `eval/match_quality.py` (CLINC150 and BANKING77, intents as items).
Rows, top-1 over in-scope queries on the tuning split and on the test split:
- supervised ceilings, which read every pool label (never available to the product): logistic
  regression (C=10) and the matcher's own cosine classifier trained on every labelled pool text
  (100 steps, no self-training), and the prototypes of every labelled pool text;
- the shipped 5-shot matcher (confirmed exemplars + unlabelled pool, default config), with the
  accuracy of the labels it gives the pool (its best class per pool item; read here only to
  diagnose, out-of-scope pool items count as wrong).
The question it answers: is 5-shot top-1 held back by the classifier (then the ceilings are near
it) or by the labels self-training gives the pool (then the ceilings are far above it and the
5-shot top-1 tracks the pool-label accuracy)?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from eval.match_quality import Queries, Task, banking_task, clinc_task, sample_exemplars
from feedback_ai.link import matcher as M

RESULTS = Path(__file__).resolve().parent / "results"


def accuracy(scores: np.ndarray, q: Queries) -> float:
    inscope = q.y >= 0
    return float((scores[inscope].argmax(1) == q.y[inscope]).mean())


def _both(scorer, task: Task) -> dict:  # type: ignore[no-untyped-def]
    return {
        split: accuracy(scorer(getattr(task, split).x), getattr(task, split))
        for split in ("tune", "test")
    }


def ceilings(task: Task) -> dict:
    x, y = M.normalise(task.source_x), task.source_y
    n = len(task.descriptions)
    logistic = LogisticRegression(C=10.0, max_iter=1000).fit(x, y)
    full = M._Training(
        x, y, np.ones(len(y), np.float32), np.zeros((0, x.shape[1]), np.float32), np.zeros(0, int)
    )
    cosine = M.train_cosine(full, M.normalise(task.descriptions), M.MatcherConfig(steps=100))
    proto = M.normalise(np.stack([x[y == c].mean(0) for c in range(n)]))
    return {
        "logistic regression, every pool label": _both(logistic.decision_function, task),
        "cosine classifier, every pool label": _both(lambda q: q @ cosine.T, task),
        "prototypes, every pool label": _both(lambda q: q @ proto.T, task),
    }


def five_shot(task: Task, seeds: int) -> list[dict]:
    pool = M.normalise(task.pool)
    truth = np.full(len(pool), -1)
    truth[: len(task.source_y)] = task.source_y  # the pool starts with the labelled source rows
    rows = []
    for seed in range(seeds):
        m = M.fit_matcher(task.descriptions, sample_exemplars(task, seed), task.pool)
        pool_labels = (pool @ m.weights.T).argmax(1)
        row = {"seed": seed, **_both(lambda q, w=m.weights: q @ w.T, task)}
        row["pool label accuracy"] = float((pool_labels == truth).mean())
        rows.append(row)
        print(task.dataset, row, flush=True)
    return rows


def markdown(results: dict) -> str:
    lines = [
        "# 5-shot matching against supervised ceilings",
        "",
        "`python -m eval.match_ceiling`. "
        "Top-1 over in-scope queries; ceilings read every pool label (the product never can).",
        "",
    ]
    for dataset, r in results.items():
        lines += [
            f"### {dataset}",
            "",
            "| scorer | tuning top-1 | test top-1 | pool label accuracy |",
            "|---|---|---|---|",
        ]
        for name, v in r["ceilings"].items():
            lines.append(f"| {name} | {v['tune']:.1%} | {v['test']:.1%} | (labels read) |")
        shots = r["five_shot"]
        keys = ("tune", "test", "pool label accuracy")
        mean = {k: float(np.mean([s[k] for s in shots])) for k in keys}
        for name, s in [*((f"seed {s['seed']}", s) for s in shots), ("mean", mean)]:
            cells = " | ".join(f"{s[k]:.1%}" for k in keys)
            lines.append(f"| 5-shot matcher, {name} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for task in (clinc_task(), banking_task()):
        results[task.dataset] = {
            "ceilings": ceilings(task),
            "five_shot": five_shot(task, args.seeds),
        }
    (RESULTS / "match_ceiling.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "match_ceiling.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
