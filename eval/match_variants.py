"""Extras of `eval/match_quality.py`: the variants tried (tuning split only), the cost of one
`Matcher.match` call and of a fit at product scale (500 items, 100k stored feedback)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from sklearn.linear_model import LogisticRegression

from eval import labelled as L
from eval.corpus import real_texts, replicate
from eval.match_quality import Queries, Run, Task, auroc, top1
from feedback_ai.link.matcher import MatcherConfig, MatchResult, fit_matcher, normalise


def kmeans_refine(start: np.ndarray, pool: np.ndarray, exemplars: list | None, iters: int = 3):
    """Centroids re-estimated from the pool items nearest to them, anchored on the start."""
    c = start
    for _ in range(iters):
        nearest = (pool @ c.T).argmax(1)
        sums = start.copy()
        np.add.at(sums, nearest, pool)
        for i, e in enumerate(exemplars or []):
            sums[i] += e.sum(0)
        c = normalise(sums)
    return c


def logistic_scores(task: Task, ex: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    n = len(task.descriptions)
    rows = np.vstack([normalise(task.descriptions), *ex])
    y = np.concatenate([np.arange(n), np.repeat(np.arange(n), [len(e) for e in ex])])
    return LogisticRegression(C=10.0, max_iter=300).fit(rows, y).predict_log_proba(x)


LABELLED_SPLITS = [("banking77", s) for s in ("train", "test")] + [
    ("clinc150", s) for s in ("train", "val", "test", "oos_train", "oos_val", "oos_test")
]


def distractors(n: int, seed: int = 0) -> np.ndarray:
    """Vectors of `n` texts from neither labelled dataset (app reviews, bug report summaries)."""
    texts = real_texts()
    labelled = {t for dataset, split in LABELLED_SPLITS for t in L.load(dataset, split).texts}
    others = np.array([i for i, t in enumerate(texts) if t not in labelled])
    chosen = np.random.default_rng(seed).choice(others, n, replace=False)
    return L.embed(texts)[chosen]


def variants(task: Task, runs: list[Run], ex: list[np.ndarray]) -> list[dict]:
    desc, q = normalise(task.descriptions), task.tune
    proto = normalise(np.stack([e.mean(0) for e in ex]))
    mixed = normalise(proto + 0.25 * desc)
    scored = {
        "zero-shot: name cosine (baseline)": q.x @ desc.T,
        "zero-shot: names + pool k-means (3 rounds)": q.x @ kmeans_refine(desc, task.pool, None).T,
        "5-shot: prototype (baseline)": q.x @ proto.T,
        "5-shot: prototype + 0.25 name": q.x @ mixed.T,
        "5-shot: prototype + name + pool k-means": q.x @ kmeans_refine(mixed, task.pool, ex).T,
        "5-shot: logistic regression on exemplars + name (no pool)": logistic_scores(task, ex, q.x),
    }
    rows = [_variant_row(name, s, q) for name, s in scored.items()]
    fitted = {
        "zero-shot: cosine classifier, no pool": (None, None, MatcherConfig()),
        "5-shot: cosine classifier, no pool": (ex, None, MatcherConfig()),
        "5-shot: self-training, scale 30": (ex, task.pool, MatcherConfig(scale=30.0)),
        "5-shot: self-training, labelled weight 30": (
            ex,
            task.pool,
            MatcherConfig(labelled_weight=30.0),
        ),
        "5-shot: self-training, schedule 20/80/200/400": (
            ex,
            task.pool,
            MatcherConfig(schedule=(20, 80, 200, 400)),
        ),
        "5-shot: self-training, pool subsampled to 3,000": (
            ex,
            task.pool,
            MatcherConfig(max_pool=3_000),
        ),
        "5-shot: self-training, pool + 15,000 unrelated texts": (
            ex,
            np.vstack([task.pool, distractors(15_000)]),
            MatcherConfig(),
        ),
    }
    for name, (e, pool, config) in fitted.items():
        m = fit_matcher(task.descriptions, e, pool, config=config).match(q.x)
        rows.append(_variant_row(name, None, q, m))
    for run in runs[:2]:
        name = f"{run.regime}: self-training + lexical view (default)"
        rows.append(_variant_row(name, None, q, run.tune))
    cosine = replace(runs[1].tune, support=runs[1].tune.scores)
    rows.append(_variant_row("5-shot: default, AUROC from the classifier score", None, q, cosine))
    return rows


def _variant_row(name: str, scores, q: Queries, m: MatchResult | None = None) -> dict:
    inscope = q.y >= 0
    if m is None:
        return {"variant": name, "top1": top1(scores, q), "auroc": auroc(scores.max(1), q)}
    acc = float((m.indices[inscope, 0] == q.y[inscope]).mean())
    return {"variant": name, "top1": acc, "auroc": auroc(m.support[:, 0], q)}


def match_latency(
    n_items: int = 500, calls: int = 2000, dim: int = 384, pool: int = 20_000
) -> dict:
    """`Matcher.match` for one query against n_items classes with `pool` members among them,
    so the local re-ranking runs (values do not matter here)."""
    rng = np.random.default_rng(0)
    w = normalise(rng.normal(size=(n_items, dim)))
    members = normalise(rng.normal(size=(pool, dim)))
    matcher = fit_matcher(w, pool=members, config=MatcherConfig(steps=1, schedule=(1,)))
    queries = normalise(rng.normal(size=(calls, dim)))
    times = []
    for q in queries:
        started = time.perf_counter()
        matcher.match(q[None], k=5)
        times.append(time.perf_counter() - started)
    ms = 1e3 * np.asarray(times)
    p50, p95 = np.percentile(ms, [50, 95])
    return {"items": n_items, "pool": pool, "p50_ms": float(p50), "p95_ms": float(p95)}


def fit_cost(task: Task, n_items: int = 500, n_pool: int = 100_000) -> dict:
    """Seconds for one 5-shot fit with `n_items` items over an `n_pool` pool (real vectors of
    `task`, replicated with noise past their count; subsampled to `max_pool` by the matcher)."""
    rng = np.random.default_rng(0)
    real = np.vstack([task.pool, task.tune.x, task.test.x])
    desc = real[rng.choice(len(real), n_items, replace=False)]
    shots = [real[rng.choice(len(real), 5, replace=False)] for _ in range(n_items)]
    pool = replicate(real, n_pool)
    started = time.perf_counter()
    matcher = fit_matcher(desc, shots, pool)
    seconds = time.perf_counter() - started
    return {"items": n_items, "pool": n_pool, "pool_used": matcher.pool_used, "fit_s": seconds}
