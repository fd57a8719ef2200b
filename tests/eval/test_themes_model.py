"""eval.themes_model's merge signal: which nearest-theme pairs are one intent split in two."""

from __future__ import annotations

import numpy as np

from eval.themes_model import merge_signal
from eval.themes_quality import Corpus


def blobs(centres: np.ndarray, per: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.repeat(centres, per, axis=0) + spread * rng.standard_normal(
        (len(centres) * per, centres.shape[1])
    )
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_an_intent_split_in_two_is_a_same_intent_pair() -> None:
    """Four tight, separate blobs: the clusterer finds four themes. Blobs 0 and 1 are one gold
    intent (a split intent), 2 and 3 are two more; 1's nearest theme is 0 by construction."""
    centres = np.eye(8)[:4] * 1.0
    centres[1] = 0.8 * centres[0] + 0.6 * np.eye(8)[4]  # 0 and 1 are closer than any other pair
    X = blobs(centres, per=40, spread=0.02)
    gold = np.repeat([0, 0, 1, 2], 40)
    out = merge_signal(
        Corpus(
            "toy",
            [f"about topic{g} case{i % 3}" for i, g in enumerate(gold)],
            gold,
            X.astype(np.float32),
            False,
        )
    )
    assert out["themes"] == 4
    centroid = out["centroid cosine"]
    assert centroid["nearest_pairs_same_intent"] == 0.5  # 0 <-> 1 both ways; 2, 3 pair elsewhere
    assert centroid["auroc"] == 1.0  # the split pair is the most similar one
    assert set(out) == {
        "dataset",
        "themes",
        "centroid cosine",
        "c-TF-IDF cosine",
        "graph link share",
    }
