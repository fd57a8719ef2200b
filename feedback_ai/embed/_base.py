"""The embedder contract: one abstract batch method; batching lives here."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import numpy as np


class Embedder(abc.ABC):
    """Turns texts into L2-normalised float32 vectors. Queries and documents share one path."""

    name: str
    dim: int
    variant: str = ""  # "torch", "onnx", "onnx-int8": variants give slightly different vectors

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    @abc.abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; returns (len(texts), dim) float32, rows L2-normalised."""

    def embed(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed any number of texts in batches of `batch_size` (default: the embedder's);
        `progress(n)` after each batch.

        Texts are batched in order of length (rows come back in input order), so each batch pads
        to a length close to that of its texts instead of to the longest text in the input.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        size = batch_size or self.batch_size
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), size):
            idx = order[start : start + size]
            out[idx] = self.embed_batch([texts[i] for i in idx])
            if progress is not None:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_batch([text])[0]
