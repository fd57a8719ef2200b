"""One BERTopic fit over precomputed mention vectors, and assignment of the rest by centroid.

BERTopic gets our stages injected (`embedding_model` for its keyword refinement only, the
reducer and clusterer of `feedback_ai.themes.cluster`, a lemmatising vectorizer) and is fitted on
the stored vectors: nothing is re-embedded. Large corpora are fitted on a seeded sample of
`sample_size` mentions; every other mention goes to its nearest cluster centroid.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import ThreadpoolController

from feedback_ai.embed._base import Embedder
from feedback_ai.themes.labels import LemmaTokenizer, distinct

log = logging.getLogger(__name__)
ASSIGN_CHUNK = 50_000  # rows per matrix product when assigning: bounded memory
# The most frequent words and bigrams kept for c-TF-IDF. BERTopic's KeyBERTInspired looks each
# candidate up in the vocabulary list (a linear scan), so its cost grows with vocabulary x
# candidates: at 50k mentions, 100 candidates over the full vocabulary took 44 s of 110.
MAX_VOCABULARY = 30_000
# Up to this many rows, `nearest` multiplies on one BLAS thread. Live assignment calls it for
# every ingest part (tens of mentions x a few hundred centroids): OpenBLAS's second thread
# spin-waits after each such product, and at 100k stored mentions that idle spinning made live
# assignment add 35-59% to the ingest CPU time instead of 8% (eval/bench_refit.py).
SMALL_BATCH = 4_096


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


_BLAS_LOCK = threading.Lock()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread within the block (the controller is built once: cheap). The
    limit is process-wide, so blocks take turns: two interleaved save/restore pairs could leave
    the process on one thread for good."""
    with _BLAS_LOCK, _blas().limit(limits=1, user_api="blas"):
        yield


@dataclass
class Fitted:
    sample: np.ndarray  # row indexes of the corpus the model was fitted on
    labels: np.ndarray  # per corpus row: cluster 0..k-1, or -1 (outlier)
    keywords: dict[int, list[str]]  # per cluster, best first
    model: Any  # the fitted BERTopic model (saved with safetensors)


def embedding_backend(embedder: Embedder) -> Any:
    """Our embedder as a BERTopic backend (BERTopic embeds keywords with it, never the corpus)."""
    from bertopic.backend import BaseEmbedder

    class _Backend(BaseEmbedder):  # type: ignore[misc]
        def embed(self, documents: Sequence[str], verbose: bool = False) -> np.ndarray:
            return embedder.embed(list(documents))

    return _Backend()


def fit(
    docs: Sequence[str],
    vectors: np.ndarray,
    *,
    embedder: Embedder,
    components: Callable[[int, int], tuple[Any, Any]],
    lemmas: dict[str, str],
    sample_size: int,
    seed: int,
    progress: Callable[[str], None] = lambda _: None,
) -> Fitted:
    """Fit on (a sample of) the corpus; `components(n, seed)` -> (reducer, clusterer)."""
    from bertopic import BERTopic
    from bertopic.representation import KeyBERTInspired, MaximalMarginalRelevance
    from sklearn.feature_extraction.text import CountVectorizer

    sample = _sample(len(docs), sample_size, seed)
    reducer, clusterer = components(len(sample), seed)
    model = BERTopic(
        embedding_model=embedding_backend(embedder),
        umap_model=reducer,
        hdbscan_model=clusterer,
        vectorizer_model=CountVectorizer(
            tokenizer=LemmaTokenizer(lemmas),
            lowercase=False,
            token_pattern=None,
            ngram_range=(1, 2),
            max_features=MAX_VOCABULARY,
        ),
        representation_model=[
            KeyBERTInspired(top_n_words=10, nr_candidate_words=30, random_state=seed),
            MaximalMarginalRelevance(diversity=0.3, top_n_words=10),
        ],
        top_n_words=10,
        calculate_probabilities=False,
    )
    progress("clustering")
    topics, _ = model.fit_transform([docs[i] for i in sample], embeddings=vectors[sample])
    keywords = {
        t: distinct([w for w, _ in model.get_topic(t) if w]) for t in set(topics) if t != -1
    }
    labels = np.full(len(docs), -1, dtype=np.int64)
    labels[sample] = np.asarray(topics, dtype=np.int64)
    return Fitted(sample=sample, labels=labels, keywords=keywords, model=model)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Unit-length mean vector of each cluster 0..k-1 (zeros for an empty one).

    Sums `ASSIGN_CHUNK` rows at a time: selecting the labelled rows first copied the corpus (1.5
    GB of vectors at a million mentions)."""
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    for start in range(0, len(vectors), ASSIGN_CHUNK):
        part = labels[start : start + ASSIGN_CHUNK]
        keep = np.flatnonzero(part >= 0)
        if len(keep):
            one_hot = sparse.csr_matrix(
                (np.ones(len(keep), dtype=np.float32), (part[keep], keep)), shape=(k, len(part))
            )
            sums += one_hot @ vectors[start : start + len(part)]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def own_similarity(
    vectors: np.ndarray, cents: np.ndarray, labels: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Cosine of each of `vectors[rows]` to its centroid `cents[labels[row]]` (unit vectors),
    `ASSIGN_CHUNK` rows at a time."""
    out = np.zeros(len(rows), dtype=np.float32)
    for start in range(0, len(rows), ASSIGN_CHUNK):
        part = rows[start : start + ASSIGN_CHUNK]
        out[start : start + len(part)] = np.einsum("ij,ij->i", vectors[part], cents[labels[part]])
    return out


def nearest(
    vectors: np.ndarray, cents: np.ndarray, threshold: float, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `vectors` (or of `vectors[rows]`, read a chunk at a time): the nearest
    centroid's index (or -1 below `threshold`) and its similarity."""
    n = len(vectors) if rows is None else len(rows)
    best = np.full(n, -1, dtype=np.int64)
    sims = np.zeros(n, dtype=np.float32)
    if not len(cents):
        return best, sims
    if n <= SMALL_BATCH:
        with one_blas_thread():
            return _nearest(vectors, rows, cents, threshold, best, sims)
    return _nearest(vectors, rows, cents, threshold, best, sims)


def _nearest(
    vectors: np.ndarray,
    rows: np.ndarray | None,
    cents: np.ndarray,
    threshold: float,
    best: np.ndarray,
    sims: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    for start in range(0, len(best), ASSIGN_CHUNK):
        stop = start + ASSIGN_CHUNK
        block = (vectors[start:stop] if rows is None else vectors[rows[start:stop]]) @ cents.T
        idx = np.argmax(block, axis=1)
        sims[start : start + len(idx)] = block[np.arange(len(idx)), idx]
        best[start : start + len(idx)] = idx
    best[sims < threshold] = -1
    return best, sims


def save(model: Any, path: Path, embedding_model: str) -> None:
    """Safe serialisation: safetensors + JSON configs, c-TF-IDF kept, a pointer to the model."""
    path.mkdir(parents=True, exist_ok=True)
    vectorizer = model.vectorizer_model  # with max_features its ids are numpy ints: not JSON
    vectorizer.vocabulary_ = {word: int(i) for word, i in vectorizer.vocabulary_.items()}
    model.save(
        str(path),
        serialization="safetensors",
        save_ctfidf=True,
        save_embedding_model=embedding_model,
    )
