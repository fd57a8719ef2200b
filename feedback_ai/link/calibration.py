"""Calibrated confidence for a match, and the three decisions made from it.

A `Calibrator` maps a match's features to P(the top-1 class is the right one), where a ticket
about nothing known (out of scope) always counts as wrong. Features (`match_features`; every
candidate's with `rank_features`): the classifier cosine of the class, its margin over the best
other class, the support-centroid cosine of the class (see `feedback_ai.link.matcher`) and
log(1 + its confirmed exemplars), so one calibrator serves items with and without exemplars.

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

Measured on the test splits (`python -m eval.match_quality`; ECE over 10 equal-width bins):
| ECE | uncalibrated softmax | own calibrator | shipped default |
| CLINC150 + OOS, 5-shot | 0.100 | 0.017 | 0.021 |
| CLINC150 + OOS, zero-shot | 0.175 | 0.041 | 0.053 |
| BANKING77, 5-shot | 0.034 | 0.014 | 0.023 |
| BANKING77, zero-shot | 0.181 | 0.044 | 0.084 |
A calibrator fitted on CLINC150 alone scores ECE 0.090 on BANKING77: expect that order of error
from the default on a domain it has not seen, until the workspace has its own.

Decisions: `matched` if confidence >= `Thresholds.matched` (default 0.8), `needs_review` if >=
`Thresholds.review` (0.4), else `no_match`. At 0.8 the precision of `matched` was 97.0%
(CLINC150) and 95.4% (BANKING77) on the tuning splits at 5-shot. Expected precision at the
defaults (test, own calibrator): 5-shot 95.4% on CLINC150 with 4.0% of out-of-scope tickets
matched and 81.5% of in-scope ones, 95.7% on BANKING77; zero-shot about 90% (90.7%, 89.8%).
With the shipped default: 96.5% (2.9% out-of-scope matched) and 93.4%.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from feedback_ai.link.matcher import MatchResult

Array = np.ndarray
Method = Literal["platt", "isotonic"]
FEATURES = ("score", "margin", "support", "log1p_exemplars")
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "models" / "match_calibration.json"
MATCHED, NEEDS_REVIEW, NO_MATCH = "matched", "needs_review", "no_match"


def match_features(result: MatchResult) -> Array:
    """(n, 4) features of each query's top class, in `FEATURES` order (what calibrators see)."""
    n, k = result.scores.shape
    return rank_features(result).reshape(n, k, len(FEATURES))[:, 0]


def rank_features(result: MatchResult) -> Array:
    """(n * k, 4) features of every candidate, query by query, best first. A runner-up's margin
    is its score minus the top score (negative), so its confidence comes out low: calibrators
    are fitted on top-1 matches only."""
    scores = result.scores
    other = np.where(np.arange(scores.shape[1]) == 0, result.second[:, None], scores[:, :1])
    feats = [scores, scores - other, result.support, np.log1p(result.exemplars)]
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

    def logit(self, features: Array) -> Array:
        return np.atleast_2d(features) @ np.asarray(self.coef) + self.intercept

    def apply(self, features: Array) -> Array:
        z = self.logit(features)
        if self.method == "isotonic":
            return np.interp(z, self.knots_x, self.knots_y)
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        raw = json.loads(text)
        for key in ("coef", "knots_x", "knots_y", "features"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


def fit_calibrator(
    features: Array,
    correct: Array,
    method: Method = "platt",
    sample_weight: Array | None = None,
    fitted_on: dict[str, Any] | None = None,
) -> Calibrator:
    """Fit on held-out matches: `features` (n, 4) and whether each top-1 was right."""
    y = np.asarray(correct, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs both correct and wrong matches")
    lr = LogisticRegression(C=100.0, max_iter=1000).fit(features, y, sample_weight=sample_weight)
    coef, intercept = tuple(float(c) for c in lr.coef_[0]), float(lr.intercept_[0])
    platt = Calibrator("platt", coef, intercept, fitted_on=dict(fitted_on or {}))
    if method == "platt":
        return platt
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(platt.logit(features), y, sample_weight=sample_weight)
    knots_x = tuple(float(v) for v in iso.X_thresholds_)
    knots_y = tuple(float(v) for v in iso.y_thresholds_)
    return Calibrator("isotonic", coef, intercept, knots_x, knots_y, fitted_on=platt.fitted_on)


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
