"""The reference embedder: plain sentence-transformers `encode` (torch, fp32), normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feedback_ai.embed._base import Embedder


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model loaded from a local directory (never a hub id)."""

    variant = "torch"

    def __init__(self, model_path: str | Path, batch_size: int = 64, name: str | None = None):
        super().__init__(batch_size)
        from sentence_transformers import SentenceTransformer  # torch: import only when used

        self.model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self.name = name or Path(model_path).name
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"{model_path}: the model does not state its embedding dimension")
        self.dim = int(dim)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
