from __future__ import annotations

import numpy as np
import pytest

from feedback_ai.link import calibration as cal
from feedback_ai.link.matcher import fit_matcher
from tests.link.conftest import SmallClinc


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column drives correctness through a steep logistic."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.2, 0.9, n)
    margin, support = rng.uniform(0, 0.2, n), score + rng.normal(0, 0.05, n)
    exemplars = np.log1p(rng.integers(0, 6, n))
    nearest = np.maximum(support, score) + rng.uniform(0, 0.1, n)
    correct = rng.uniform(size=n) < 1 / (1 + np.exp(-25 * (score - 0.6) - 10 * margin))
    return np.column_stack([score, margin, support, exemplars, nearest]), correct


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_is_monotone_and_bounded(method: cal.Method) -> None:
    f, ok = synthetic(3000, 0)
    calibrator = cal.fit_calibrator(f, ok, method)
    assert calibrator.coef[0] > 0  # a higher top score means more likely right
    grid = np.tile(f[:1], (200, 1))
    grid[:, 0] = np.linspace(-1, 2, 200)
    p = calibrator.apply(grid)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) >= 0) and p[-1] - p[0] > 0.5


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_json_round_trip(method: cal.Method, tmp_path) -> None:
    f, ok = synthetic(1000, 1)
    calibrator = cal.fit_calibrator(f, ok, method, fitted_on={"splits": "synthetic"})
    cal.save_calibrator(calibrator, tmp_path / "c.json")
    loaded = cal.load_calibrator(tmp_path / "c.json")
    assert loaded == calibrator
    np.testing.assert_array_equal(loaded.apply(f), calibrator.apply(f))


def test_a_calibrator_saved_before_the_nearest_feature_reads_its_own_four(tmp_path) -> None:
    f, ok = synthetic(1000, 4)
    four = cal.fit_calibrator(f[:, :4], ok, "isotonic", names=cal.FEATURES[:4])
    cal.save_calibrator(four, tmp_path / "old.json")
    old = cal.load_calibrator(tmp_path / "old.json")
    assert old.features == cal.FEATURES[:4]
    np.testing.assert_array_equal(old.apply(f), four.apply(f))  # the fifth column is ignored
    with pytest.raises(ValueError, match="5 feature columns"):
        cal.fit_calibrator(f[:, :4], ok)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_in_scope_separates_out_of_scope_queries_better_than_confidence(
    method: cal.Method,
) -> None:
    """Out-of-scope queries (always wrong) differ in `nearest` alone here; in-scope ones are
    often wrong too. P(in scope), fitted on that question, ranks them apart better than the
    confidence, fitted on "right"."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    f, ok = synthetic(4000, 5)
    oos = rng.uniform(size=len(ok)) < 0.2
    f[oos, 4] -= rng.uniform(0.0, 0.1, oos.sum())  # further from every known example
    ok = ok & ~oos
    c = cal.fit_calibrator(f, ok, method, in_scope=~oos)
    scope = c.in_scope(f)
    assert scope is not None and c.scope_coef[4] > 0
    assert roc_auc_score(~oos, scope) > roc_auc_score(~oos, c.apply(f))
    assert cal.fit_calibrator(f, ok, method).in_scope(f) is None  # no out-of-scope rows given
    loaded = cal.Calibrator.from_json(c.to_json())
    np.testing.assert_allclose(loaded.in_scope(f), scope)


def test_ece_drops_after_calibration_on_held_out_data() -> None:
    f, ok = synthetic(4000, 2)
    calibrator = cal.fit_calibrator(f[:2000], ok[:2000], "isotonic")
    raw = cal.expected_calibration_error(f[2000:, 0], ok[2000:])
    after = cal.expected_calibration_error(calibrator.apply(f[2000:]), ok[2000:])
    assert after < raw / 2


def test_reliability_covers_every_query() -> None:
    conf = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    rows = cal.reliability(conf, np.array([0, 0, 1, 1, 1]))
    assert sum(r["count"] for r in rows) == 5
    assert [r["accuracy"] for r in rows] == [0.0, 0.5, 1.0]
    assert cal.expected_calibration_error(conf, np.array([0, 0, 1, 1, 1])) == pytest.approx(
        (0.05 + 2 * 0.35 + 2 * 0.025) / 5
    )


def test_decisions_follow_the_thresholds() -> None:
    t = cal.Thresholds(matched=0.9, review=0.5)
    got = cal.decide(np.array([0.95, 0.9, 0.7, 0.5, 0.1]), t)
    assert list(got) == ["matched", "matched", "needs_review", "needs_review", "no_match"]
    with pytest.raises(ValueError):
        cal.Thresholds(matched=0.3, review=0.6)


def test_fit_needs_right_and_wrong_matches() -> None:
    f, _ = synthetic(10, 3)
    with pytest.raises(ValueError, match="both"):
        cal.fit_calibrator(f, np.ones(10, bool))


def test_rank_features_give_runners_up_less_confidence() -> None:
    from tests.link.test_matcher import FAST, clusters

    centres, x, y = clusters(6, 10, spread=0.2, seed=5)
    result = fit_matcher(centres, [x[y == c][:3] for c in range(6)], config=FAST).match(x, k=3)
    per_rank = cal.rank_features(result).reshape(len(x), 3, len(cal.FEATURES))
    np.testing.assert_array_equal(per_rank[:, 0], cal.match_features(result))
    assert np.all(per_rank[:, 1:, 1] <= 0)  # runners-up: margin below the top score
    p = cal.load_calibrator().apply(cal.rank_features(result)).reshape(len(x), 3)
    assert p[:, 0].mean() > p[:, 1:].max(axis=1).mean() + 0.3


def test_shipped_default_calibrator_loads() -> None:
    calibrator = cal.load_calibrator()
    assert calibrator.features == cal.FEATURES
    low = np.array([[0.2, 0.0, 0.2, 0.0, 0.3]])
    high = np.array([[0.9, 0.3, 0.9, np.log1p(5), 0.95]])
    assert 0 <= calibrator.apply(low)[0] < 0.2 < 0.9 < calibrator.apply(high)[0] <= 1
    in_scope = calibrator.in_scope(np.vstack([low, high]))
    assert in_scope is not None and in_scope[0] < 0.5 < in_scope[1]  # fitted with OOS rows


@pytest.mark.slow
def test_real_clinc_calibration_beats_raw_softmax(clinc: SmallClinc) -> None:
    matcher = fit_matcher(clinc.descriptions, clinc.exemplars(5, seed=0), clinc.train.x)
    val, test = matcher.match(clinc.val.x), matcher.match(clinc.test.x)
    calibrator = cal.fit_calibrator(
        cal.match_features(val), val.indices[:, 0] == clinc.val.y, "platt"
    )
    ok = test.indices[:, 0] == clinc.test.y
    z = 20.0 * (test.scores - test.scores[:, :1])
    softmax = 1.0 / np.exp(z).sum(axis=1)
    after = calibrator.apply(cal.match_features(test))
    assert cal.expected_calibration_error(after, ok) < cal.expected_calibration_error(softmax, ok)
    oos = clinc.test.y < 0
    assert after[oos].mean() < after[~oos].mean() - 0.3
