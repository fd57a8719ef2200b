"""Centroids, own similarity and nearest-centroid assignment read the corpus a chunk at a time;
with chunks far smaller than the corpus they give what the whole-matrix formulas give."""

from __future__ import annotations

import numpy as np
import pytest

from feedback_ai.themes import fit


@pytest.fixture
def corpus() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1_000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = rng.integers(-1, 7, size=len(vectors))  # -1: unassigned
    labels[labels == 5] = -1  # cluster 5 stays empty
    return vectors, labels


@pytest.mark.parametrize("chunk", [37, 1_000, 50_000])
def test_chunked_centroids_similarity_and_nearest(
    corpus: tuple[np.ndarray, np.ndarray], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, labels = corpus
    monkeypatch.setattr(fit, "ASSIGN_CHUNK", chunk)
    k = 7
    cents = fit.centroids(vectors, labels, k)
    for c in range(k):
        members = vectors[labels == c].astype(np.float64).sum(axis=0)
        expected = members / max(np.linalg.norm(members), 1e-12)
        np.testing.assert_allclose(cents[c], expected, atol=1e-6)
    assert not cents[5].any()

    rows = np.flatnonzero(labels >= 0)
    own = fit.own_similarity(vectors, cents, labels, rows)
    np.testing.assert_allclose(own, (vectors[rows] * cents[labels[rows]]).sum(1), atol=1e-6)

    rest = np.flatnonzero(labels < 0)
    best, sims = fit.nearest(vectors, cents, 0.2, rows=rest)
    full = vectors[rest] @ cents.T
    expected_best = np.where(full.max(1) >= 0.2, full.argmax(1), -1)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_allclose(sims, full.max(1), atol=1e-6)
    whole_best, _ = fit.nearest(vectors[rest], cents, 0.2)  # the same without `rows`
    np.testing.assert_array_equal(whole_best, best)
