"""Theme clustering for refits: a cosine kNN graph, Leiden modularity, centroid refinement.

`GraphClusterer` is what BERTopic takes as its `hdbscan_model`; the vectors go in unreduced
(`identity_reducer()` as BERTopic's `umap_model`), so `components(n, seed)` returns that pair.

Method (`GraphClusterer.fit`), never told how many themes there are:
1. Exact cosine k-nearest-neighbour lists of the L2-normalised vectors, computed blockwise
   (memory bounded by `BLOCK_BYTES`). The graph is UMAP's fuzzy simplicial set over those lists
   (`fuzzy_graph`; `graph="cosine"` keeps the plain symmetrised kNN weighted by cosine): each
   item's links are scaled by its own neighbourhood, so a dense theme and a sparse one weigh
   alike and the kNN size, not the density, sets the scale.
2. Leiden (leidenalg, RB-configuration modularity, seeded) at a *self-consistent* resolution:
   resolution = `resolution_scale` x (communities found at it). Plain modularity (resolution 1)
   merges CLINC150's 150 intents into about 78; a fixed resolution of 10 finds 182 there but
   cuts 5 intents into 26, because modularity splits any community holding more than about
   1/resolution of the links. Tying the resolution to the count makes the rule scale-free: two
   communities of typical size stay apart while fewer than about `resolution_scale` (5.5%) of
   their links join them.
3. The kNN size is then set to `neighbour_share` (30%) of a typical theme (N / themes, within
   5..`max_neighbors`) and step 2 is solved again: with a fixed k the count grows with items
   per theme.
4. Spherical k-means from those communities (at most `max_refine_iter` rounds; 0 keeps the
   communities); clusters under `min_cluster_size` are dissolved into their neighbours. Every
   item ends at its most similar centroid, so `predict` on the training items gives back
   `labels_`. Items below `min_similarity` are outliers (-1); the default (None) assigns every
   item, since the theme registry keeps its own live-assignment threshold.

Defaults were chosen on CLINC150 `train` only (15,000 queries, 150 intents; vectors from the
default embedder, all-MiniLM-L6-v2 ONNX int8) and subsets of it (a 4,500 subsample; 5, 20 and
50 intents): the setting whose worst theme-count ratio to gold was closest to 1 among the
fuzzy graph at share 0.3/0.45/0.6 x scale 0.04/0.055 and share 0.2/0.3 x scale 0.065/0.075,
each with and without refinement, and the cosine graph's earlier variants.
Measured with it on those: 169, 117, 5, 22, 53 themes (gold 150, 150, 5, 20, 50; worst ratio
0.78; the old cosine default 0.77); on the whole train split NMI 0.904, ARI 0.725 (the cosine
graph: 171 themes, 0.904 / 0.724). KMeans told k=150: ARI 0.703. The held-out figures and the
variants table are in eval/results/themes_quality.md.

Large corpora (`fit_sample_assign`): fit on a seeded sample of `SAMPLE_SIZE` (30,000) items and
give every item its nearest centroid, `CHUNK_ROWS` at a time. The fit is quadratic in the sample
(exact kNN) plus about 5-10 Leiden runs: on real vectors on the 2-core box (load average 1) a
30,000 sample took 67 s with the fuzzy graph, 322 themes (the cosine graph: 93 s at load
average ~4). eval/results/bench_themes.md has the times.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClusterMixin

SAMPLE_SIZE = 30_000  # items a large corpus is fitted on; the rest go to the nearest centroid
CHUNK_ROWS = 20_000  # rows per matrix product when assigning
BLOCK_BYTES = 1 << 28  # bound on one kNN similarity block (256 MiB of float32)
MIN_NEIGHBORS, MAX_NEIGHBORS = 5, 30  # bounds of the adaptive kNN size (cosine graph)
MAX_FUZZY_NEIGHBORS = 60  # its upper bound on the fuzzy graph
MIN_RESOLUTION = 0.5  # floor of the self-consistent resolution
MAX_RESOLUTION_STEPS = 10
COARSE_TOL, FINE_TOL = 0.2, 0.05  # relative resolution steps that end a solve
REFINE_TOL = 0.001  # refinement ends when fewer items than this share change cluster


def normalise(X: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k nearest neighbours of each row of unit-length X (self excluded):
    (indexes, similarities), each (n, k), most similar first (ties: lower index first)."""
    n = len(X)
    k = min(k, n - 1)
    buf = np.empty((max(1, min(n, BLOCK_BYTES // (4 * n))), n), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, len(buf)):
        block = buf[: min(len(buf), n - start)]
        np.matmul(X[start : start + len(block)], X.T, out=block)
        block[np.arange(len(block)), start + np.arange(len(block))] = -np.inf
        idx[start : start + len(block)], sim[start : start + len(block)] = _top_k(block, k)
    return idx, sim


def _top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row: a value partition (cheaper than argpartition) gives
    each row's k-th largest value; the entries at or above it are sorted within their row."""
    kth = np.partition(block, block.shape[1] - k, axis=1)[:, block.shape[1] - k]
    rows, cols = np.nonzero(block >= kth[:, None])
    vals = block[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    keep = np.arange(len(rows)) - np.searchsorted(rows, rows) < k
    return cols[keep].reshape(-1, k), vals[keep].reshape(-1, k)


def knn_graph(idx: np.ndarray, sim: np.ndarray) -> Any:
    """Undirected weighted igraph of a kNN list: an edge where either end lists the other,
    weighted by their cosine similarity (floored at 0)."""
    import igraph as ig

    n, k = idx.shape
    weights = np.clip(sim.ravel(), 0.0, None).astype(np.float64)
    A = sp.coo_matrix((weights, (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    A = A.tocsr().maximum(A.T.tocsr()).tocoo()
    upper = A.row < A.col
    edges = np.column_stack([A.row[upper], A.col[upper]])
    return ig.Graph(n=n, edges=edges, edge_attrs={"weight": A.data[upper]})


def fuzzy_graph(idx: np.ndarray, sim: np.ndarray) -> Any:
    """Undirected weighted igraph of UMAP's fuzzy simplicial set over a kNN list (umap-learn's
    `fuzzy_simplicial_set`, fed our exact cosine neighbours): each item's link weights are
    scaled by its own distance to its nearest neighbour and by the spread of its k neighbours,
    so every item has about the same total weight (log2 k) in a dense theme or a sparse one;
    the directed memberships are joined by fuzzy union."""
    import igraph as ig
    from umap.umap_ import fuzzy_simplicial_set

    n, k = idx.shape
    own = np.arange(n)[:, None]  # umap counts each item as its own nearest neighbour
    knn_idx = np.hstack([own, idx]).astype(np.int32)
    knn_dist = np.hstack([np.zeros((n, 1)), np.clip(1.0 - sim, 0.0, None)]).astype(np.float32)
    A, _, _ = fuzzy_simplicial_set(
        np.empty((n, 0), dtype=np.float32),
        k + 1,
        np.random.RandomState(0),  # unused when the neighbours are given
        "cosine",
        knn_indices=knn_idx,
        knn_dists=knn_dist,
    )
    A = sp.triu(A.tocoo(), 1).tocoo()
    return ig.Graph(n=n, edges=np.column_stack([A.row, A.col]), edge_attrs={"weight": A.data})


def leiden(graph: Any, resolution: float, seed: int) -> np.ndarray:
    """Leiden communities maximising RB-configuration modularity at `resolution`."""
    import leidenalg as la

    part = la.find_partition(
        graph,
        la.RBConfigurationVertexPartition,
        weights="weight",
        resolution_parameter=resolution,
        seed=seed,
    )
    return np.asarray(part.membership, dtype=np.int64)


def centroids(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean of each cluster 0..max(labels) (-1 rows ignored)."""
    keep = labels >= 0
    k = int(labels.max()) + 1 if keep.any() else 0
    onehot = sp.csr_matrix((np.ones(keep.sum()), (labels[keep], np.flatnonzero(keep))), (k, len(X)))
    return normalise(np.asarray(onehot @ X))


def nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of X (normalised here, a chunk at a time): the most similar centroid's index and
    that cosine similarity. Memory beyond X stays at `CHUNK_ROWS` rows."""
    best = np.empty(len(X), dtype=np.int64)
    sims = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), CHUNK_ROWS):
        block = normalise(X[start : start + CHUNK_ROWS]) @ centers.T
        best[start : start + len(block)] = np.argmax(block, axis=1)
        sims[start : start + len(block)] = np.max(block, axis=1)
    return best, sims


def refine(X: np.ndarray, labels: np.ndarray, min_size: int, max_iter: int) -> np.ndarray:
    """Spherical k-means from `labels`: clusters under `min_size` are dropped each round and
    their items move to the nearest remaining centroid; it stops when fewer than `REFINE_TOL`
    of the items move. Returns the final centroids."""
    labels = _drop_small(labels, min_size)
    centers = centroids(X, labels)
    for _ in range(max_iter):
        assigned = nearest(X, centers)[0]  # numbered like `labels`: centers come from them
        moved = float(np.mean(assigned != labels))
        labels = _drop_small(assigned, min_size)
        centers = centroids(X, labels)
        if moved < REFINE_TOL:
            break
    return centers


def settle(X: np.ndarray, labels: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the communities as they are, but for those under `min_size`, whose items go to the
    nearest remaining centroid. Returns (labels, centroids)."""
    labels = _drop_small(labels, min_size)
    centers = centroids(X, labels)
    out = labels < 0
    if out.any():
        labels[out] = nearest(X[out], centers)[0]
        centers = centroids(X, labels)
    return labels, centers


def by_size(centers: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids and labels renumbered by cluster size, largest first (ties: first item);
    centroids no item is nearest to are dropped."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -counts))]
    relabel = np.empty(len(centers), dtype=np.int64)
    relabel[order] = np.arange(len(order))
    return centers[order], relabel[labels]


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters with fewer than `min_size` items become -1; the rest renumbered 0..k-1 by size
    (largest first; ties by first item), so the numbering does not depend on Leiden's ids."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    keep = (counts >= min_size) & (ids >= 0)
    if not keep.any():  # nothing is big enough: keep the largest cluster
        keep = (counts == counts[ids >= 0].max()) & (ids >= 0)
    order = np.lexsort((first[keep], -counts[keep]))
    mapping = np.full(len(ids), -1, dtype=np.int64)
    mapping[np.flatnonzero(keep)[order]] = np.arange(keep.sum())
    return mapping[np.searchsorted(ids, labels)]


def self_consistent(
    graph: Any, scale: float, start: float, seed: int, min_size: int, tol: float
) -> tuple[np.ndarray, float, float]:
    """Leiden at the resolution that matches its own outcome: resolution = scale x (communities
    of at least `min_size` found at it). A community then survives when its share of links kept
    inside exceeds about `scale` x its size relative to the mean, whatever the number of themes.
    Solved on log(resolution) from `start` by secant steps kept inside the bracket found so far,
    until a step or the bracket is within `tol`. Returns the best run: (membership, resolution,
    relative gap between resolution and scale x count)."""
    x, lo, hi, runs = float(np.log(start)), -np.inf, np.inf, []
    for _ in range(MAX_RESOLUTION_STEPS):
        membership = leiden(graph, float(np.exp(x)), seed)
        gap = np.log(scale * max(n_clusters(membership, min_size), 1)) - x  # > 0: too coarse
        runs.append((gap, x, membership))
        lo, hi = (max(lo, x), hi) if gap > 0 else (lo, min(hi, x))
        step = _next_log_resolution(runs, x, gap, lo, hi)
        if abs(step - x) <= np.log1p(tol) or hi - lo <= np.log1p(tol):
            break
        x = step
    best_gap, best_x, best = min(runs, key=lambda r: abs(r[0]))
    return best, float(np.exp(best_x)), float(np.expm1(abs(best_gap)))


def _next_log_resolution(runs: list[Any], x: float, gap: float, lo: float, hi: float) -> float:
    """Secant step on gap(x) through the last two runs (a fixed-point step after the first),
    kept inside the bracket (lo, hi) and at or above log(MIN_RESOLUTION)."""
    step = x + gap
    if len(runs) > 1 and runs[-2][1] != x:
        gap0, x0, _ = runs[-2]
        slope = (gap - gap0) / (x - x0)
        step = x - gap / slope if slope < 0 else step
    if np.isfinite(lo) and np.isfinite(hi):
        step = float(np.clip(step, lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)))
    return max(step, float(np.log(MIN_RESOLUTION)))


def n_clusters(labels: np.ndarray, min_size: int) -> int:
    return int((np.bincount(labels[labels >= 0]) >= min_size).sum())


def neighbours_for(n: int, themes: int, share: float, most: int = MAX_NEIGHBORS) -> int:
    """kNN size for `n` items in `themes` themes: `share` of a typical theme, within bounds."""
    return int(np.clip(round(share * n / max(themes, 1)), MIN_NEIGHBORS, most))


class GraphClusterer(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """kNN graph + Leiden + centroid refinement (see the module docstring), sklearn-style.

    After `fit(X)`: `labels_` (0..k-1 by size, largest first; -1 below `min_similarity`),
    `cluster_centers_` (unit length), `n_clusters_`, and the `n_neighbors_` and `resolution_`
    it settled on. `predict(X)` gives the nearest centroid. A fixed `resolution` skips the
    self-consistent search; `neighbour_share=None` keeps `n_neighbors`. The same
    `random_state` and input order give the same partition.
    """

    def __init__(
        self,
        n_neighbors: int = 15,
        resolution: float | None = None,
        resolution_scale: float = 0.055,
        neighbour_share: float | None = 0.3,
        min_cluster_size: int = 5,
        min_similarity: float | None = None,
        max_refine_iter: int = 30,
        random_state: int = 0,
        graph: str = "fuzzy",
        max_neighbors: int = MAX_FUZZY_NEIGHBORS,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.resolution = resolution
        self.resolution_scale = resolution_scale
        self.neighbour_share = neighbour_share
        self.min_cluster_size = min_cluster_size
        self.min_similarity = min_similarity
        self.max_refine_iter = max_refine_iter
        self.random_state = random_state
        self.graph = graph
        self.max_neighbors = max_neighbors

    def fit(self, X: np.ndarray, y: Any = None) -> GraphClusterer:
        X = normalise(X)
        if len(X) < 2:
            raise ValueError(f"need at least 2 items to cluster, got {len(X)}")
        idx, sim = knn(X, max(self.n_neighbors, self.max_neighbors))
        communities = self._communities(idx, sim)
        if self.max_refine_iter > 0:
            centers = refine(X, communities, self.min_cluster_size, self.max_refine_iter)
            best, sims = nearest(X, centers)
        else:
            best, centers = settle(X, communities, self.min_cluster_size)
            sims = np.einsum("ij,ij->i", X, centers[best])
        self.cluster_centers_, best = by_size(centers, best)
        self.n_clusters_ = len(self.cluster_centers_)
        self.labels_ = self._floor(best, sims)
        return self

    def _communities(self, idx: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Stage 1 at `n_neighbors` (a coarse solve); stage 2 at the kNN size its theme count
        implies, solved to 5%. A fixed `resolution` is one Leiden run at `n_neighbors`."""
        k = self.n_neighbors
        graph = self._graph(idx[:, :k], sim[:, :k])
        if self.resolution is not None:
            self.n_neighbors_, self.resolution_ = k, self.resolution
            return leiden(graph, self.resolution, self._seed())
        coarse = COARSE_TOL if self.neighbour_share is not None else FINE_TOL
        membership, resolution, gap = self._solve(graph, 1.0, coarse)
        if self.neighbour_share is not None:
            n_themes = n_clusters(membership, self.min_cluster_size)
            k = neighbours_for(len(idx), n_themes, self.neighbour_share, self.max_neighbors)
            if k != self.n_neighbors or gap > FINE_TOL:
                graph = self._graph(idx[:, :k], sim[:, :k])
                membership, resolution, _ = self._solve(graph, resolution, FINE_TOL)
        self.n_neighbors_, self.resolution_ = k, resolution
        return membership

    def _graph(self, idx: np.ndarray, sim: np.ndarray) -> Any:
        if self.graph not in ("cosine", "fuzzy"):
            raise ValueError(f"graph must be 'cosine' or 'fuzzy', got {self.graph!r}")
        return fuzzy_graph(idx, sim) if self.graph == "fuzzy" else knn_graph(idx, sim)

    def _solve(self, graph: Any, start: float, tol: float) -> tuple[np.ndarray, float, float]:
        scale, size = self.resolution_scale, self.min_cluster_size
        return self_consistent(graph, scale, start, self._seed(), size, tol)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Nearest centroid per row; -1 where that similarity is under `min_similarity`."""
        return self._floor(*nearest(X, self.cluster_centers_))

    def _floor(self, best: np.ndarray, sims: np.ndarray) -> np.ndarray:
        if self.min_similarity is not None:
            best[sims < self.min_similarity] = -1
        return best

    def _seed(self) -> int:
        return int(self.random_state) % (2**31)


def identity_reducer() -> Any:
    """BERTopic's `umap_model` for this clusterer: the vectors pass through unreduced."""
    from bertopic.dimensionality import BaseDimensionalityReduction

    return BaseDimensionalityReduction()


def components(n: int, seed: int) -> tuple[Any, GraphClusterer]:
    """(reducer, clusterer) for BERTopic's `umap_model` and `hdbscan_model` on `n` items.
    The defaults do not depend on n (see the module docstring); it is part of the contract."""
    del n
    return identity_reducer(), GraphClusterer(random_state=seed)


def fit_sample_assign(
    X: np.ndarray,
    clusterer: GraphClusterer | None = None,
    sample_size: int = SAMPLE_SIZE,
    random_state: int = 0,
) -> tuple[np.ndarray, GraphClusterer, np.ndarray]:
    """Fit on a seeded sample of `sample_size` rows (all rows if fewer), then label every row by
    its nearest centroid. Returns (labels for all rows, the fitted clusterer, sample indexes)."""
    model = clusterer if clusterer is not None else GraphClusterer(random_state=random_state)
    sample = sample_rows(len(X), sample_size, random_state)
    model.fit(X[sample])
    return model.predict(X), model, sample


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indexes of a seeded uniform sample of min(n, size) rows."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
