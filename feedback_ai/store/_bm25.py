"""BM25 sparse vectors for hybrid search, from Qdrant's own encoder (`qdrant_edge.Bm25`).

Documents get term-frequency weights (k=1.2, b=0.75 over an average length); queries get 1.0
per unique term; the engine multiplies in the IDF (the sparse vector is declared with the IDF
modifier), so the score is BM25 over the mentions of the collection. Both backends use this
encoder, so a point's sparse vector is the same whichever engine stores it.
"""

from __future__ import annotations

from functools import lru_cache

import qdrant_edge as qe

SPARSE = "bm25"  # the sparse vector's name; the dense vector is the unnamed default ("")
DENSE = ""
RRF_K = 60  # the usual constant of Reciprocal Rank Fusion (Cormack et al., 2009)


@lru_cache(maxsize=1)
def _encoder() -> qe.Bm25:
    return qe.Bm25(qe.Bm25Config(language="english"))


def document(text: str) -> tuple[list[int], list[float]]:
    vec = _encoder().embed_document(text)
    return list(vec.indices), list(vec.values)


def query(text: str) -> tuple[list[int], list[float]]:
    vec = _encoder().embed_query(text)
    return list(vec.indices), list(vec.values)
