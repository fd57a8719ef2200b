"""Calibrated confidence for a match, and the three decisions made from it.

A `Calibrator` maps a match's features to P(the top-1 class is the right one), where a ticket
about nothing known (out of scope) always counts as wrong. Features (`match_features`; every
candidate's with `rank_features`): the classifier cosine of the class, its margin over the best
other class, the support-centroid cosine of the class (see `feedback_ai.link.matcher`),
log(1 + its confirmed exemplars), so one calibrator serves items with and without exemplars,
and the cosine to the class's nearest known member.

A calibrator fitted with out-of-scope rows also holds `in_scope`: a logistic P(the ticket is
about one of the classes at all) on the same features. That is the out-of-scope signal: the
confidence also counts in-scope mistakes as wrong, so it ranks out-of-scope tickets less well
(CLINC150 test, 5-shot: AUROC 0.971 for P(in scope), 0.966 for the confidence).

Methods (both serialise to plain JSON, `Calibrator.to_json` / `from_json`):
- `platt`: logistic regression on the features (Platt scaling with four inputs).
- `isotonic`: the Platt logit as a 1-D score, then isotonic regression on it (monotone,
  piecewise linear between knots, clipped to [0, 1]).
`eval/match_quality.py` picks the method by 2-fold ECE on the tuning split (isotonic won on
both datasets) and weights out-of-scope rows to 20% of the fitting mass, an assumed share of
tickets about nothing known (CLINC150 val has 3%, its test 18%).

A workspace with enough confirmed links can fit its own calibrator on held-out matches;
otherwise `load_calibrator()` reads the shipped default (models/match_calibration.json):
isotonic, fitted on public tuning splits only (CLINC150 val + oos_val and a held-out fifth of
BANKING77 train; the zero-shot and 5-shot matchers of 5 seeds pooled; 30,588 matches).

Measured on the test splits (`python -m eval.match_quality`, 2026-12-07, matcher with its
lexical view; ECE over 10 equal-width bins):
| ECE | uncalibrated softmax | own calibrator | shipped default |
| CLINC150 + OOS, 5-shot | 0.136 | 0.021 | 0.023 |
| CLINC150 + OOS, zero-shot | 0.219 | 0.048 | 0.062 |
| BANKING77, 5-shot | 0.078 | 0.010 | 0.024 |
| BANKING77, zero-shot | 0.244 | 0.048 | 0.094 |
A calibrator fitted on CLINC150 alone scores ECE 0.091 on BANKING77: expect that order of error
from the default on a domain it has not seen, until the workspace has its own.

Decisions: `matched` if confidence >= `Thresholds.matched` (default 0.8), `needs_review` if >=
`Thresholds.review` (0.4), else `no_match`. At 0.8 the precision of `matched` was 96.9%
(CLINC150) on the tuning split at 5-shot. Expected at the defaults (test, own calibrator):
5-shot 95.5% on CLINC150 with 3.5% of out-of-scope tickets matched and 84.9% of in-scope ones,
95.1% on BANKING77; zero-shot 89.1% on CLINC150. With the shipped default: 96.8% (2.1%
out-of-scope matched) and 93.5%.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from feedback_ai.link.matcher import MatchResult

Array = np.ndarray
Method = Literal["platt", "isotonic"]
FEATURES = ("score", "margin", "support", "log1p_exemplars", "nearest")
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "models" / "match_calibration.json"
MATCHED, NEEDS_REVIEW, NO_MATCH = "matched", "needs_review", "no_match"


def match_features(result: MatchResult) -> Array:
    """(n, 5) features of each query's top class, in `FEATURES` order (what calibrators see)."""
    n, k = result.scores.shape
    return rank_features(result).reshape(n, k, len(FEATURES))[:, 0]


def rank_features(result: MatchResult) -> Array:
    """(n * k, 5) features of every candidate, query by query, best first. A runner-up's margin
    is its score minus the top score (negative), so its confidence comes out low: calibrators
    are fitted on top-1 matches only."""
    scores = result.scores
    other = np.where(np.arange(scores.shape[1]) == 0, result.second[:, None], scores[:, :1])
    nearest = result.support if result.nearest is None else result.nearest
    feats = [scores, scores - other, result.support, np.log1p(result.exemplars), nearest]
    return np.stack(feats, axis=-1).reshape(-1, len(FEATURES))


@dataclass(frozen=True)
class Calibrator:
    """Raw match features -> P(correct). `knots_*` are used by the isotonic method only."""

    method: Method
    coef: tuple[float, ...]
    intercept: float
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    features: tuple[str, ...] = FEATURES
    fitted_on: dict[str, Any] = field(default_factory=dict)
    # P(in scope): a logistic on the same features, fitted on in-scope vs out-of-scope rows
    # (empty when the fit had no out-of-scope rows).
    scope_coef: tuple[float, ...] = ()
    scope_intercept: float = 0.0

    def _x(self, features: Array) -> Array:
        """`features` in `FEATURES` order; a calibrator fitted on fewer reads its own columns
        (one saved before `nearest` existed uses the first four)."""
        columns = [FEATURES.index(f) for f in self.features]
        return np.atleast_2d(features)[:, columns]

    def logit(self, features: Array) -> Array:
        return self._x(features) @ np.asarray(self.coef) + self.intercept

    def apply(self, features: Array) -> Array:
        z = self.logit(features)
        if self.method == "isotonic":
            return np.interp(z, self.knots_x, self.knots_y)
        return 1.0 / (1.0 + np.exp(-z))

    def in_scope(self, features: Array) -> Array | None:
        """P(the ticket is about one of the known classes at all), None if not fitted. The
        out-of-scope signal: fitted on that question directly it separates tickets about
        nothing known better than the confidence, which also counts in-scope mistakes."""
        if not self.scope_coef:
            return None
        scope = self._x(features) @ np.asarray(self.scope_coef) + self.scope_intercept
        return 1.0 / (1.0 + np.exp(-scope))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        raw = json.loads(text)
        for key in ("coef", "knots_x", "knots_y", "features", "scope_coef"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


def fit_calibrator(
    features: Array,
    correct: Array,
    method: Method = "platt",
    sample_weight: Array | None = None,
    fitted_on: dict[str, Any] | None = None,
    names: tuple[str, ...] = FEATURES,
    in_scope: Array | None = None,
) -> Calibrator:
    """Fit on held-out matches: `features` (n, 5) and whether each top-1 was right. `names`
    labels the columns when fewer are given (the first of `FEATURES`). With `in_scope`
    (whether each query was about a known class) holding both values, `Calibrator.in_scope`
    is fitted too: a logistic P(in scope) on the same rows and weights."""
    if names != FEATURES[: len(names)]:
        raise ValueError(f"feature names must be the first of {FEATURES}, got {names}")
    if np.shape(features)[1] != len(names):
        raise ValueError(
            f"expected {len(names)} feature columns {names}, got {np.shape(features)[1]}"
        )
    x, y = np.atleast_2d(features), np.asarray(correct, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs both correct and wrong matches")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    coef, intercept = _logistic(x, y, w)
    platt = Calibrator("platt", coef, intercept, features=names, fitted_on=dict(fitted_on or {}))
    scope = None if in_scope is None else np.asarray(in_scope, dtype=int)
    if scope is not None and len(np.unique(scope)) == 2:
        scope_coef, scope_intercept = _logistic(x, scope, w)
        platt = replace(platt, scope_coef=scope_coef, scope_intercept=scope_intercept)
    if method == "platt":
        return platt
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(platt.logit(x), y, sample_weight=w)
    knots_x = tuple(float(v) for v in iso.X_thresholds_)
    knots_y = tuple(float(v) for v in iso.y_thresholds_)
    return replace(platt, method="isotonic", knots_x=knots_x, knots_y=knots_y)


def _logistic(x: Array, y: Array, w: Array) -> tuple[tuple[float, ...], float]:
    lr = LogisticRegression(C=100.0, max_iter=1000).fit(x, y, sample_weight=w)
    return tuple(float(c) for c in lr.coef_[0]), float(lr.intercept_[0])


def load_calibrator(path: Path = DEFAULT_PATH) -> Calibrator:
    return Calibrator.from_json(Path(path).read_text())


def save_calibrator(calibrator: Calibrator, path: Path = DEFAULT_PATH) -> None:
    Path(path).write_text(calibrator.to_json() + "\n")


@dataclass(frozen=True)
class Thresholds:
    """Confidence cut-offs between the three decisions (`review` <= `matched`)."""

    matched: float = 0.8
    review: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.matched <= 1.0:
            raise ValueError("thresholds need 0 <= review <= matched <= 1")


def decide(confidence: Array, thresholds: Thresholds | None = None) -> Array:
    """`matched` / `needs_review` / `no_match` per confidence."""
    t = thresholds or Thresholds()
    c = np.asarray(confidence)
    return np.where(c >= t.matched, MATCHED, np.where(c >= t.review, NEEDS_REVIEW, NO_MATCH))


def reliability(
    confidence: Array, correct: Array, bins: int = 10, weight: Array | None = None
) -> list[dict[str, float]]:
    """Equal-width bins over [0, 1]: count, weight share, mean confidence and accuracy of each
    non-empty bin (means weighted by `weight`, e.g. to re-balance out-of-scope queries)."""
    c, y = np.asarray(confidence, float), np.asarray(correct, float)
    w = np.ones_like(c) if weight is None else np.asarray(weight, float)
    which = np.minimum((c * bins).astype(int), bins - 1)
    rows = []
    for b in np.unique(which):
        m = which == b
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": int(m.sum()),
                "share": float(w[m].sum() / w.sum()),
                "confidence": float(np.average(c[m], weights=w[m])),
                "accuracy": float(np.average(y[m], weights=w[m])),
            }
        )
    return rows


def expected_calibration_error(
    confidence: Array, correct: Array, bins: int = 10, weight: Array | None = None
) -> float:
    """Sum over bins of |accuracy - mean confidence| times the bin's share of queries."""
    rows = reliability(confidence, correct, bins, weight)
    return float(sum(r["share"] * abs(r["accuracy"] - r["confidence"]) for r in rows))
