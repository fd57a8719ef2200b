"""The theme clusterer: recovery without the count, determinism, outliers, predict, sampling.

Fast tests use seeded synthetic themes (unit vectors around random centres); the slow ones
use real BANKING77 queries through the real embedding model and BERTopic itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from feedback_ai.themes import cluster as C
from tests.conftest import INTENTS


def themes(
    k: int = 6, per: int = 50, dim: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """k themes of `per` unit vectors each, cosine to their centre about 0.8."""
    rng = np.random.default_rng(seed)
    centres = C.normalise(rng.normal(size=(k, dim)))
    gold = np.repeat(np.arange(k), per)
    noise = rng.normal(scale=0.75 / np.sqrt(dim), size=(k * per, dim))
    return C.normalise(centres[gold] + noise), gold


def test_knn_is_the_exact_cosine_neighbourhood() -> None:
    X, _ = themes(k=3, per=40)
    idx, sim = C.knn(X, 7)
    full = X @ X.T
    np.fill_diagonal(full, -np.inf)
    assert np.array_equal(idx, np.argsort(-full, axis=1)[:, :7])
    assert np.allclose(sim, np.take_along_axis(full, idx, axis=1))


# the cosine graph with the parameters it was the default with
COSINE: dict[str, Any] = {"graph": "cosine", "n_neighbors": 10, "neighbour_share": 0.15}
GRAPHS = [pytest.param({}, id="fuzzy"), pytest.param(COSINE, id="cosine")]


def test_the_fuzzy_graph_joins_each_item_fully_to_its_nearest_neighbour() -> None:
    """UMAP's memberships: the nearest neighbour gets 1, farther ones less (fed distances, not
    similarities: reversed, the farthest listed neighbour would get the 1)."""
    X, _ = themes(k=3, per=40)
    idx, sim = C.knn(X, 10)
    graph = C.fuzzy_graph(idx, sim)
    weight = {frozenset(e.tuple): e["weight"] for e in graph.es}
    assert all(0 < w <= 1 for w in weight.values())
    nearest = [weight[frozenset((i, int(idx[i, 0])))] for i in range(len(X))]
    farthest = [weight.get(frozenset((i, int(idx[i, -1]))), 0.0) for i in range(len(X))]
    assert np.allclose(nearest, 1.0)
    assert np.mean(farthest) < 0.5


@pytest.mark.parametrize("graph", GRAPHS)
def test_themes_are_recovered_without_being_told_how_many(graph: dict[str, Any]) -> None:
    """A fixed high resolution (10) cuts these 6 into about 40 (ARI 0.22)."""
    X, gold = themes(k=6)
    model = C.GraphClusterer(random_state=0, **graph).fit(X)
    assert model.n_clusters_ == 6
    assert adjusted_rand_score(gold, model.labels_) > 0.95


@pytest.mark.parametrize("graph", GRAPHS)
def test_many_themes_are_not_merged_into_a_few(graph: dict[str, Any]) -> None:
    """Plain modularity (resolution 1) merges these into about 74 (ARI 0.73)."""
    X, gold = themes(k=100, per=30, dim=24, seed=1)
    model = C.GraphClusterer(random_state=0, **graph).fit(X)
    assert 90 <= model.n_clusters_ <= 110
    assert adjusted_rand_score(gold, model.labels_) > 0.95


def test_without_refinement_the_communities_are_kept_and_small_ones_dissolved() -> None:
    X, gold = themes(k=5)
    tiny = themes(k=1, per=3, seed=11)[0]
    model = C.GraphClusterer(max_refine_iter=0, random_state=0).fit(np.vstack([X, tiny]))
    assert model.n_clusters_ == 5 and np.bincount(model.labels_).min() >= 5
    assert adjusted_rand_score(gold, model.labels_[: len(X)]) > 0.95
    assert np.allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, atol=1e-5)


def test_an_unknown_graph_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="graph must be"):
        C.GraphClusterer(graph="dense").fit(themes(k=2)[0])


def test_the_same_seed_gives_the_same_partition() -> None:
    X, _ = themes(k=8, seed=2)
    first = C.GraphClusterer(random_state=3).fit(X)
    second = C.GraphClusterer(random_state=3).fit(X)
    assert np.array_equal(first.labels_, second.labels_)
    assert np.array_equal(first.cluster_centers_, second.cluster_centers_)


def test_another_seed_on_shuffled_input_finds_the_same_themes() -> None:
    X, _ = themes(k=8, seed=2)
    perm = np.random.default_rng(5).permutation(len(X))
    first = C.GraphClusterer(random_state=0).fit(X).labels_
    second = np.empty_like(first)
    second[perm] = C.GraphClusterer(random_state=1).fit(X[perm]).labels_
    assert adjusted_rand_score(first, second) > 0.95


def test_labels_are_numbered_by_size_and_predict_agrees_with_fit() -> None:
    X, _ = themes(k=5, per=40)
    X = np.vstack([X, themes(k=1, per=90, seed=9)[0]])  # one larger theme, last in the input
    model = C.GraphClusterer(random_state=0).fit(X)
    sizes = np.bincount(model.labels_)
    assert np.all(np.diff(sizes) <= 0) and np.all(model.labels_[-90:] == 0)
    assert np.array_equal(model.predict(X), model.labels_)


def test_far_items_are_outliers_under_min_similarity() -> None:
    X, _ = themes(k=5)
    far = C.normalise(np.random.default_rng(7).normal(size=(6, X.shape[1])))
    model = C.GraphClusterer(min_similarity=0.5, random_state=0).fit(np.vstack([X, far]))
    assert np.all(model.labels_[-6:] == -1)
    assert np.all(model.labels_[:-6] >= 0)
    assert np.all(model.predict(far) == -1)


def test_a_tiny_group_is_not_a_theme() -> None:
    X, _ = themes(k=5)
    tiny = themes(k=1, per=3, seed=11)[0]
    model = C.GraphClusterer(min_cluster_size=5, random_state=0).fit(np.vstack([X, tiny]))
    assert model.n_clusters_ == 5
    assert np.bincount(model.labels_).min() >= 5


def test_too_little_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        C.GraphClusterer().fit(np.ones((1, 8), dtype=np.float32))


def test_sample_and_assign_labels_every_row() -> None:
    X, gold = themes(k=6, per=300, seed=4)
    labels, model, sample = C.fit_sample_assign(X, sample_size=400, random_state=0)
    assert len(sample) == 400 and len(labels) == len(X) and np.all(labels >= 0)
    assert np.array_equal(labels[sample], model.labels_)
    assert adjusted_rand_score(gold, labels) > 0.95


@pytest.mark.slow  # imports BERTopic
def test_components_give_bertopic_its_two_stages() -> None:
    reducer, clusterer = C.components(1000, 42)
    X, _ = themes(k=3, per=20)
    assert np.array_equal(reducer.fit(X).transform(X), X)
    assert clusterer.random_state == 42


# --- real data


@pytest.fixture(scope="module")
def five_intents(banking: dict[str, list[str]], real_embedder: Any) -> tuple[Any, ...]:
    intents = INTENTS[:5]
    texts = [t for intent in intents for t in banking[intent]]
    gold = np.repeat(np.arange(len(intents)), [len(banking[i]) for i in intents])
    return texts, np.asarray(real_embedder.embed(texts), dtype=np.float32), gold


@pytest.mark.slow
def test_real_banking_intents_are_recovered(shared_data: Any, five_intents: tuple) -> None:
    _, X, gold = five_intents
    model = C.GraphClusterer(random_state=0).fit(X)
    assert 4 <= model.n_clusters_ <= 8
    assert adjusted_rand_score(gold, model.labels_) > 0.7


@pytest.mark.slow
def test_bertopic_with_these_stages_yields_the_same_partition(five_intents: tuple) -> None:
    from bertopic import BERTopic

    texts, X, _ = five_intents
    ours = C.GraphClusterer(random_state=0).fit(X).labels_
    reducer, clusterer = C.components(len(X), 0)
    topics, _ = BERTopic(umap_model=reducer, hdbscan_model=clusterer).fit_transform(texts, X)
    assert adjusted_rand_score(ours, topics) == 1.0
