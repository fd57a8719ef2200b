"""Request-to-item matching quality: CLINC150 (+ out-of-scope) and BANKING77, intents as items.

Run: `.venv/bin/python -m eval.match_quality` -> `eval/results/match_quality.{json,md}` and the
shipped default calibrator `models/match_calibration.json`.

Protocol (nothing is tuned or fitted on a test split):
- Items: one per intent, described by its name as words (`card_arrival` -> "card arrival").
- Pool (unlabelled stored feedback): CLINC150 train + oos_train texts; for BANKING77 the 80%
  of train that is not held out (stratified, seed 0). Labels of the pool are never read.
- Confirmed exemplars: 5 per item drawn from the pool's labelled source (seeds 0..n-1).
- Tuning / calibration split: CLINC150 val + oos_val; the held-out 20% of BANKING77 train.
- Report split: CLINC150 test + oos_test; BANKING77 test.
- Out of scope counts as a wrong match; AUROC separates in-scope from out-of-scope queries.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from eval import labelled as L
from eval.match_report import markdown
from feedback_ai.link import calibration as cal
from feedback_ai.link.lexical import MatcherTexts
from feedback_ai.link.matcher import MatcherConfig, MatchResult, fit_matcher, label_text, normalise

RESULTS = Path(__file__).resolve().parent / "results"
SHOTS = 5
# Out-of-scope share assumed when fitting calibrators: one ticket in five is about nothing known.
# CLINC150 val has 3% out of scope (its test 18%); unweighted figures are reported too.
OOS_SHARE = 0.2


@dataclass(frozen=True)
class Queries:
    x: np.ndarray
    y: np.ndarray  # class index, -1 for out of scope
    texts: list[str] = field(default_factory=list)  # one per row (the lexical view reads them)


@dataclass(frozen=True)
class Task:
    dataset: str
    descriptions: np.ndarray
    pool: np.ndarray
    source_x: np.ndarray  # where exemplars are drawn from (the pool's labelled twin)
    source_y: np.ndarray
    tune: Queries
    test: Queries
    description_texts: list[str] = field(default_factory=list)
    pool_texts: list[str] = field(default_factory=list)
    source_texts: list[str] = field(default_factory=list)


def _queries(dataset: str, names: list[str], splits: list[str]) -> Queries:
    index = {n: i for i, n in enumerate(names)}
    parts = [L.load(dataset, s) for s in splits]
    x = np.vstack([L.embed_split(p) for p in parts])
    y = np.array([index.get(label, -1) for p in parts for label in p.labels])
    return Queries(x, y, [t for p in parts for t in p.texts])


def clinc_task() -> Task:
    names = L.intent_names("clinc150")
    source = _queries("clinc150", names, ["train"])
    oos = _queries("clinc150", names, ["oos_train"])
    pool = np.vstack([source.x, oos.x])
    tune = _queries("clinc150", names, ["val", "oos_val"])
    test = _queries("clinc150", names, ["test", "oos_test"])
    labels = [label_text(n) for n in names]
    return Task(
        "clinc150", L.embed(labels), pool, source.x, source.y, tune, test,
        labels, source.texts + oos.texts, source.texts,
    )  # fmt: skip


def banking_task(held_out: float = 0.2) -> Task:
    names = L.intent_names("banking77")
    train = _queries("banking77", names, ["train"])
    rng = np.random.default_rng(0)
    tune_mask = np.zeros(len(train.y), bool)
    for c in range(len(names)):
        rows = np.flatnonzero(train.y == c)
        tune_mask[rng.choice(rows, round(held_out * len(rows)), replace=False)] = True
    keep = ~tune_mask
    texts = np.array(train.texts, dtype=object)
    tune = Queries(train.x[tune_mask], train.y[tune_mask], list(texts[tune_mask]))
    test = _queries("banking77", names, ["test"])
    labels = [label_text(n) for n in names]
    pool_texts = list(texts[keep])
    return Task(
        "banking77", L.embed(labels), train.x[keep], train.x[keep], train.y[keep], tune, test,
        labels, pool_texts, pool_texts,
    )  # fmt: skip


def sample_rows(task: Task, seed: int, k: int = SHOTS) -> list[np.ndarray]:
    """Per class, the rows of the labelled source drawn as its `k` confirmed exemplars."""
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(task.source_y == c) for c in range(len(task.descriptions))]
    return [rng.choice(r, k, replace=False) for r in rows]


def sample_exemplars(task: Task, seed: int, k: int = SHOTS) -> list[np.ndarray]:
    return [task.source_x[r] for r in sample_rows(task, seed, k)]


def matcher_texts(task: Task, rows: list[np.ndarray] | None) -> MatcherTexts:
    """The texts behind a fit's vectors (descriptions, exemplars drawn at `rows`, pool)."""
    n = len(task.descriptions)
    exemplars = [[task.source_texts[i] for i in r] for r in rows] if rows else [[]] * n
    return MatcherTexts(task.description_texts, exemplars, task.pool_texts)


# --- metrics -------------------------------------------------------------------------------


def top1(scores: np.ndarray, q: Queries) -> float:
    inscope = q.y >= 0
    return float((scores[inscope].argmax(1) == q.y[inscope]).mean())


def auroc(score: np.ndarray, q: Queries) -> float | None:
    inscope = q.y >= 0
    return float(roc_auc_score(inscope, score)) if (~inscope).any() else None


def correct(result: MatchResult, q: Queries) -> np.ndarray:
    return result.indices[:, 0] == q.y  # out of scope (-1) is never right


def softmax_top(result: MatchResult, scale: float) -> np.ndarray:
    """The uncalibrated confidence: the classifier's softmax probability over its top-k."""
    z = scale * (result.scores - result.scores[:, :1])
    return 1.0 / np.exp(z).sum(axis=1)


def decisions(conf: np.ndarray, ok: np.ndarray, q: Queries, t: cal.Thresholds) -> dict:
    d = cal.decide(conf, t)
    matched, inscope = d == cal.MATCHED, q.y >= 0
    out = {
        "precision_matched": float(ok[matched].mean()) if matched.any() else None,
        "matched_share_in_scope": float(matched[inscope].mean()),
        "matched_correct_share_in_scope": float((matched & ok)[inscope].mean()),
        "needs_review_share_in_scope": float((d == cal.NEEDS_REVIEW)[inscope].mean()),
    }
    if (~inscope).any():
        out["oos_matched_share"] = float(matched[~inscope].mean())
        out["oos_no_match_share"] = float((d == cal.NO_MATCH)[~inscope].mean())
    return out


# --- runs ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One fitted matcher's results on both splits."""

    regime: str
    seed: int | None
    tune: MatchResult
    test: MatchResult
    fit_s: float


def run_matcher(
    task: Task, rows: list[np.ndarray] | None, config: MatcherConfig, lexical: bool = True
) -> Run:
    """Fit on the exemplars at `rows` (None: zero-shot), with the lexical view unless told not
    to, and match both splits."""
    exemplars = None if rows is None else [task.source_x[r] for r in rows]
    texts = matcher_texts(task, rows) if lexical else None
    started = time.perf_counter()
    matcher = fit_matcher(task.descriptions, exemplars, task.pool, config=config, texts=texts)
    fit_s = time.perf_counter() - started
    regime = "zero_shot" if exemplars is None else f"{SHOTS}_shot"
    tq, te = task.tune, task.test
    t = (tq.texts, te.texts) if lexical else (None, None)
    return Run(
        regime, None, matcher.match(tq.x, texts=t[0]), matcher.match(te.x, texts=t[1]), fit_s
    )


def baseline_scores(task: Task, exemplars: list[np.ndarray] | None, x: np.ndarray) -> np.ndarray:
    """Zero-shot: cosine to the name vector; few-shot: cosine to the exemplar mean."""
    if exemplars is None:
        return x @ normalise(task.descriptions).T
    return x @ normalise(np.stack([e.mean(0) for e in exemplars])).T


def regime_figures(task: Task, runs: list[Run], shots: list | None) -> dict:
    """Baseline and method figures on the test split, averaged over seeds."""
    rows = []
    for run, ex in zip(runs, shots or [None] * len(runs), strict=True):
        base = baseline_scores(task, ex, task.test.x)
        rows.append(
            {
                "baseline_top1": top1(base, task.test),
                "baseline_auroc": auroc(base.max(1), task.test),
                "top1": float(correct(run.test, task.test)[task.test.y >= 0].mean()),
                "auroc_support": auroc(run.test.support[:, 0], task.test),
                "fit_s": run.fit_s,
            }
        )
    keys = [k for k in rows[0] if rows[0][k] is not None]
    out: dict[str, Any] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out.update({f"{k}_per_seed": [r[k] for r in rows] for k in ("top1",) if len(rows) > 1})
    if len(rows) > 1 and "auroc_support" in keys:
        out["auroc_support_per_seed"] = [r["auroc_support"] for r in rows]
    return out


def features_of(runs: list[Run], task: Task, split: str) -> tuple[np.ndarray, np.ndarray]:
    q = getattr(task, split)
    f = np.vstack([cal.match_features(getattr(r, split)) for r in runs])
    ok = np.concatenate([correct(getattr(r, split), q) for r in runs])
    return f, ok


def oos_weights(oos: np.ndarray, share: float | None) -> np.ndarray:
    """Row weights giving out-of-scope rows `share` of the total mass (None: as sampled)."""
    w = np.ones(len(oos))
    if share is not None and oos.any():
        w[oos] = share / (1 - share) * (~oos).sum() / oos.sum()
    return w


def choose_method(
    f: np.ndarray, ok: np.ndarray, w: np.ndarray, scope: np.ndarray, seed: int = 0
) -> tuple[str, dict]:
    """Platt vs isotonic by 2-fold (weighted) ECE on the tuning split."""
    folds = np.random.default_rng(seed).permutation(len(ok)) % 2
    ece = {}
    for method in ("platt", "isotonic"):
        errs = []
        for k in (0, 1):
            fit, held = folds != k, folds == k
            c = cal.fit_calibrator(
                f[fit],
                ok[fit],
                method,
                w[fit],
                in_scope=scope[fit],  # type: ignore[arg-type]
            )
            errs.append(cal.expected_calibration_error(c.apply(f[held]), ok[held], weight=w[held]))
        ece[method] = float(np.mean(errs))
    return min(ece, key=ece.__getitem__), ece


def calibration_report(
    task: Task, runs: list[Run], calibrators: dict[str, cal.Calibrator], t: cal.Thresholds
) -> dict:
    """Per regime, on the test split: ECE before / after each calibrator, the reliability table
    and the decisions at thresholds `t` for the first calibrator (`own`)."""
    out: dict = {}
    for regime in sorted({r.regime for r in runs}):
        chosen = [r for r in runs if r.regime == regime]
        f, ok = features_of(chosen, task, "test")
        q = Queries(task.test.x, np.tile(task.test.y, len(chosen)))
        raw = np.concatenate([softmax_top(r.test, MatcherConfig().scale) for r in chosen])
        p = {name: c.apply(f) for name, c in calibrators.items()}
        own = next(iter(calibrators))
        out[regime] = {
            "ece_uncalibrated_softmax": cal.expected_calibration_error(raw, ok),
            **{f"ece_{name}": cal.expected_calibration_error(v, ok) for name, v in p.items()},
            "auroc_confidence": auroc(p[own], q),
            "auroc_in_scope": _auroc_in_scope(calibrators[own], f, q),
            "reliability_own": cal.reliability(p[own], ok),
            **{f"at_defaults_{name}": decisions(v, ok, q, t) for name, v in p.items()},
            "tune_at_defaults_own": tune_decisions(task, chosen, calibrators[own], t),
        }
    return out


def _auroc_in_scope(c: cal.Calibrator, f: np.ndarray, q: Queries) -> float | None:
    scope = c.in_scope(f)
    return None if scope is None else auroc(scope, q)


def tune_decisions(task: Task, runs: list[Run], c: cal.Calibrator, t: cal.Thresholds) -> dict:
    f, ok = features_of(runs, task, "tune")
    return decisions(c.apply(f), ok, Queries(task.tune.x, np.tile(task.tune.y, len(runs))), t)


# --- main ----------------------------------------------------------------------------------


def evaluate_task(task: Task, seeds: int, with_variants: bool) -> tuple[list[Run], dict]:
    config = MatcherConfig()
    zero = run_matcher(task, None, config)
    rows = [sample_rows(task, s) for s in range(seeds)]
    shots = [[task.source_x[r] for r in rs] for rs in rows]
    few = [replace(run_matcher(task, rs, config), seed=s) for s, rs in enumerate(rows)]
    figures: dict[str, Any] = {
        "zero_shot": regime_figures(task, [zero], None),
        f"{SHOTS}_shot": regime_figures(task, few, shots),
    }
    # the same fits without the lexical view, for comparison (not calibrated, not shipped)
    dense = [run_matcher(task, rs, config, lexical=False) for rs in [None, *rows]]
    figures["dense_only"] = {
        "zero_shot": regime_figures(task, dense[:1], None),
        f"{SHOTS}_shot": regime_figures(task, dense[1:], shots),
    }
    # ... and without the query-time local re-ranking (matcher step 7)
    no_local = replace(config, local_weight=0.0)
    plain = [run_matcher(task, rs, no_local) for rs in [None, *rows]]
    figures["no_local_rerank"] = {
        "zero_shot": regime_figures(task, plain[:1], None),
        f"{SHOTS}_shot": regime_figures(task, plain[1:], shots),
    }
    figures["oracle_all_labels"] = oracle(task)
    if with_variants:
        from eval.match_variants import variants

        figures["variants_tune"] = variants(task, [zero, few[0]], shots[0])
    return [zero, *few], figures


def oracle(task: Task) -> dict:
    """For context, not a method: prototypes of ALL labelled pool texts, scored on the test."""
    n = len(task.descriptions)
    proto = normalise(np.stack([task.source_x[task.source_y == c].mean(0) for c in range(n)]))
    scores = task.test.x @ proto.T
    return {"top1": top1(scores, task.test), "auroc": auroc(scores.max(1), task.test)}


def fit_calibration(
    parts: list[tuple[Task, list[Run]]], label: str, share: float | None = OOS_SHARE
) -> cal.Calibrator:
    """Pool the tuning-split matches of `parts`; out-of-scope rows re-weighted to `share`."""
    f = np.vstack([features_of(runs, task, "tune")[0] for task, runs in parts])
    ok = np.concatenate([features_of(runs, task, "tune")[1] for task, runs in parts])
    oos = np.concatenate([np.tile(task.tune.y < 0, len(runs)) for task, runs in parts])
    w = oos_weights(oos, share)
    method, cv = choose_method(f, ok, w, ~oos)
    fitted_on = {"splits": label, "rows": len(ok), "oos_share": share, "method_cv_ece": cv}
    return cal.fit_calibrator(f, ok, method, w, fitted_on, in_scope=~oos)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--no-save-default", action="store_true")
    parser.add_argument("--no-fit-cost", action="store_true", help="skip the 500-item fit timing")
    args = parser.parse_args()
    tasks = [clinc_task(), banking_task()]
    report: dict[str, Any] = {"config": asdict(MatcherConfig())}
    done = []
    for task in tasks:
        runs, figures = evaluate_task(task, args.seeds, not args.no_variants)
        report[task.dataset] = figures
        done.append((task, runs))
    default = fit_calibration(
        done, "clinc150 val+oos_val, banking77 held-out 20% of train; zero- and 5-shot runs"
    )
    thresholds = cal.Thresholds()
    report["thresholds"] = thresholds.__dict__
    report["default_calibrator"] = json.loads(default.to_json())
    for task, runs in done:
        own = fit_calibration([(task, runs)], f"{task.dataset} tuning split")
        natural = fit_calibration([(task, runs)], f"{task.dataset} tuning split", None)
        calibrators = {"own": own, "own_unweighted": natural, "default": default}
        report[task.dataset]["calibration"] = {
            "own_calibrator": json.loads(own.to_json()),
            **calibration_report(task, runs, calibrators, thresholds),
        }
    (clinc, clinc_runs), (bank, bank_runs) = done
    transfer = fit_calibration([(clinc, clinc_runs)], "clinc150 tuning split only")
    f, ok = features_of(bank_runs, bank, "test")
    report["transfer_clinc_calibrator_on_banking77_test_ece"] = cal.expected_calibration_error(
        transfer.apply(f), ok
    )
    from eval.match_variants import fit_cost, match_latency

    report["match_latency"] = match_latency()
    if not args.no_fit_cost:
        report["fit_cost"] = fit_cost(clinc)
    if not args.no_save_default:
        cal.save_calibrator(default)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "match_quality.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "match_quality.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
