from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from feedback_ai.link.calibration import NO_MATCH, decide, fit_calibrator, match_features
from feedback_ai.link.lexical import MatcherTexts
from feedback_ai.link.matcher import Matcher, MatcherConfig, fit_matcher, label_text, normalise
from tests.link.conftest import CLINC_INTENTS, SmallClinc

FAST = MatcherConfig(steps=15)


def clusters(n_cls: int, per: int, dim: int = 32, spread: float = 0.35, seed: int = 0):
    """Unit-norm class centres and `per` noisy members each: (centres, x, y)."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.normal(size=(n_cls, dim)))
    y = np.repeat(np.arange(n_cls), per)
    x = normalise(centres[y] + spread * rng.normal(size=(len(y), dim)) / np.sqrt(dim) * 4)
    return centres, x, y


def test_label_text() -> None:
    assert label_text("card_arrival") == "card arrival"
    assert label_text("cardArrival") == "card arrival"
    assert label_text("top-up  failed") == "top up failed"


def test_match_returns_sorted_top_k_with_support() -> None:
    centres, x, _ = clusters(6, 10)
    result = fit_matcher(centres, config=FAST).match(x, k=3)
    assert result.indices.shape == result.scores.shape == result.support.shape == (60, 3)
    assert np.all(np.diff(result.scores, axis=1) <= 1e-6)
    assert np.all(result.second <= result.scores[:, 0] + 1e-6)
    assert fit_matcher(centres, config=FAST).match(x[0], k=50).indices.shape == (1, 6)


def test_confirmed_exemplars_change_the_ranking() -> None:
    # Class 0's description points away from its tickets: its exemplars fix that.
    centres, x, y = clusters(4, 20, seed=1)
    desc = centres.copy()
    desc[0] = normalise(centres[1] - centres[0])
    queries = x[y == 0]
    before = fit_matcher(desc, config=FAST).match(queries, k=1).indices[:, 0]
    exemplars = [x[y == c][:5] for c in range(4)]
    after = fit_matcher(desc, exemplars, config=FAST).match(queries, k=1).indices[:, 0]
    assert (after == 0).mean() > (before == 0).mean() + 0.3


def test_rejected_exemplar_lowers_its_class() -> None:
    centres, x, y = clusters(3, 10, seed=2)
    query = x[y == 0][:1]
    rejected = [query, np.zeros((0, 32)), np.zeros((0, 32))]
    plain = fit_matcher(centres, config=FAST).match(query, k=3)
    pushed = fit_matcher(centres, rejected=rejected, config=FAST).match(query, k=3)
    score = lambda r: r.scores[0, list(r.indices[0]).index(0)]  # noqa: E731
    assert score(pushed) < score(plain) - 0.05


def test_unlabelled_pool_helps_when_descriptions_are_off() -> None:
    centres, x, y = clusters(8, 60, spread=0.2, seed=3)
    rng = np.random.default_rng(103)
    desc = normalise(centres + 0.5 * rng.normal(size=centres.shape) / np.sqrt(32) * 4)
    pool, queries, truth = x[::2], x[1::2], y[1::2]
    without = fit_matcher(desc, config=FAST).match(queries, k=1).indices[:, 0]
    with_pool = fit_matcher(desc, pool=pool, config=FAST)
    assert with_pool.history and with_pool.pool_used == len(pool)
    assert (with_pool.match(queries, k=1).indices[:, 0] == truth).mean() > (
        without == truth
    ).mean() + 0.1


def test_exemplar_arrays_must_cover_every_class() -> None:
    centres, x, _ = clusters(3, 5)
    with pytest.raises(ValueError, match="one"):
        fit_matcher(centres, [x[:2]], config=FAST)


def test_a_query_far_from_every_class_gets_no_match() -> None:
    centres, x, y = clusters(5, 40, dim=32, seed=4)
    matcher = fit_matcher(centres, [x[y == c][:5] for c in range(5)], config=FAST)
    held = matcher.match(x[5::2], k=5)
    rng = np.random.default_rng(104)
    strangers = normalise(rng.normal(size=(40, 32)))
    far = matcher.match(strangers, k=5)
    feats = np.vstack([match_features(held), match_features(far)])
    ok = np.r_[held.indices[:, 0] == y[5::2], np.zeros(40, bool)]
    calibrator = fit_calibrator(feats, ok)
    lone = normalise(np.linalg.svd(centres)[2][-1][None])  # orthogonal to all centres
    assert decide(calibrator.apply(match_features(matcher.match(lone))))[0] == NO_MATCH


@pytest.mark.slow
def test_real_clinc_exemplars_and_pool_improve_top1(clinc: SmallClinc) -> None:
    queries, truth = clinc.val.x[clinc.val.y >= 0], clinc.val.y[clinc.val.y >= 0]

    def top1(exemplars: list | None = None, pool: np.ndarray | None = None) -> np.ndarray:
        return fit_matcher(clinc.descriptions, exemplars, pool).match(queries, k=1).indices[:, 0]

    zero, shots = top1(), clinc.exemplars(5, seed=0)
    few, zero_pool = top1(shots), top1(pool=clinc.train.x)
    assert (few != zero).any()
    assert (few == truth).mean() > (zero == truth).mean() + 0.1
    assert (zero_pool == truth).mean() > (zero == truth).mean() + 0.03


# --- the lexical view (feedback_ai.link.lexical) ----------------------------------------------


def _blurred_pair(seed: int = 4):
    """Two classes whose tickets the vectors cannot tell apart (one shared centre) but whose
    words differ: refunds vs invoices. Returns (descriptions, pool vectors, labels, texts)."""
    rng = np.random.default_rng(seed)
    centre = normalise(rng.normal(size=(1, 32)))[0]
    words = {0: ("refund", "money back", "refunded"), 1: ("invoice", "bill", "receipt")}
    texts, y = [], []
    for c, (a, b, d) in words.items():
        for i in range(40):
            texts.append(f"where is my {(a, b, d)[i % 3]} for order {i}")
            y.append(c)
    x = normalise(centre + 0.05 * rng.normal(size=(len(y), 32)))
    desc = normalise(centre + 0.05 * rng.normal(size=(2, 32)))
    return desc, x, np.array(y), texts


def test_the_lexical_view_separates_classes_the_vectors_blur() -> None:
    desc, x, y, texts = _blurred_pair()
    ex_rows = [np.flatnonzero(y == c)[:5] for c in (0, 1)]
    exemplars = [x[r] for r in ex_rows]
    lexical = MatcherTexts(["refund", "invoice"], [[texts[i] for i in r] for r in ex_rows], texts)
    dense = fit_matcher(desc, exemplars, x, config=FAST)
    both = fit_matcher(desc, exemplars, x, config=FAST, texts=lexical)
    queries = ["i want a refund please", "send me the invoice again", "my money back now"]
    q = x[:3]  # vectors of the shared centre: they say nothing about the class
    assert dense.lexical is None and both.lexical is not None
    assert both.match(q, k=1, texts=queries).indices[:, 0].tolist() == [0, 1, 0]
    plain = both.match(q, k=2)  # no texts: the cosines alone, as the dense matcher ranks
    with_words = both.match(q, k=2, texts=queries)
    assert np.all(
        with_words.scores[:, 0] - with_words.scores[:, 1] > plain.scores[:, 0] - plain.scores[:, 1]
    )


def test_the_lexical_view_needs_one_text_per_row() -> None:
    desc, x, y, texts = _blurred_pair()
    ex = [x[y == c][:2] for c in (0, 1)]
    with pytest.raises(ValueError, match="one text per pool row"):
        fit_matcher(desc, ex, x, config=FAST, texts=MatcherTexts(["a", "b"], [[], []], texts[:5]))
    with pytest.raises(ValueError, match="one description"):
        fit_matcher(desc, ex, x, config=FAST, texts=MatcherTexts(["a"], [[], []], texts))
    fitted = fit_matcher(desc, ex, x, config=FAST, texts=MatcherTexts(["a", "b"], [[], []], texts))
    with pytest.raises(ValueError, match="one text per query"):
        fitted.match(x[:2], texts=["only one"])


@pytest.mark.slow
def test_real_clinc_lexical_view_does_not_lose_top1(clinc: SmallClinc) -> None:
    """Ten CLINC150 intents in confusable pairs, 5 shots, the train split as the pool: the
    lexical view changes some rankings and is at least as right on the val split."""
    inscope = clinc.val.y >= 0
    queries, truth = clinc.val.x[inscope], clinc.val.y[inscope]
    query_texts = [t for t, keep in zip(clinc.val.texts, inscope, strict=True) if keep]
    rows = clinc.exemplar_rows(5, seed=0)
    shots = [clinc.train.x[r] for r in rows]
    texts = MatcherTexts(
        [label_text(n) for n in CLINC_INTENTS],
        [[clinc.train.texts[i] for i in r] for r in rows],
        clinc.train.texts,
    )
    dense = fit_matcher(clinc.descriptions, shots, clinc.train.x).match(queries, k=1)
    both = fit_matcher(clinc.descriptions, shots, clinc.train.x, texts=texts)
    lexical = both.match(queries, k=1, texts=query_texts)
    assert (lexical.indices != dense.indices).any()
    assert (lexical.indices[:, 0] == truth).mean() >= (dense.indices[:, 0] == truth).mean()


def test_local_score_reranks_towards_the_class_whose_members_surround_the_query() -> None:
    # The classifier prefers class 0 by a hair; class 1's known members sit right at the query.
    w = normalise(np.array([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.0, 0.0, 1.0]]))
    query = normalise(np.array([[0.99, 0.08, 0.0]]))
    members = normalise(np.array([[1.0, -0.6, 0.3], [0.99, 0.09, 0.0], [0.98, 0.1, 0.02]]))
    offsets = np.array([0, 1, 3, 3])  # class 0: one far member, class 1: two close, class 2: none

    def matcher(local_weight: float) -> Matcher:
        return Matcher(
            w, w.copy(), np.zeros(3, int), members=members,
            member_offsets=offsets, local_weight=local_weight,
        )  # fmt: skip

    plain, local = matcher(0.0).match(query, k=3), matcher(0.4).match(query, k=3)
    assert plain.indices[0, 0] == 0 and local.indices[0, 0] == 1
    # the returned scores carry the local term, the runner-up too
    assert local.scores[0, 0] > plain.scores[0, list(plain.indices[0]).index(1)] + 0.3
    assert local.second[0] == pytest.approx(local.scores[0, 1])
    assert local.nearest is not None
    assert local.nearest[0, 0] == pytest.approx(float((members[1:] @ query[0]).max()), abs=1e-3)
    # class 2 has no members: its support cosine stands in
    two = list(local.indices[0]).index(2)
    assert local.nearest[0, two] == pytest.approx(local.support[0, two])


def test_local_score_needs_members() -> None:
    centres, x, _ = clusters(5, 8, seed=3)
    fitted = fit_matcher(centres, config=FAST)  # no exemplars, no pool: nothing to re-rank with
    unranked = fit_matcher(centres, config=replace(FAST, local_weight=0.0))
    np.testing.assert_allclose(fitted.match(x, k=3).scores, unranked.match(x, k=3).scores)
