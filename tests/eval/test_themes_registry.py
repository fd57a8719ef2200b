"""eval.themes_registry's cached embedder stands in for the product's embedder in the pipeline."""

from __future__ import annotations

import numpy as np

from eval.themes_registry import CachedEmbedder


def test_the_cached_embedder_takes_what_the_pipeline_passes() -> None:
    """The pipeline calls `embed(texts, progress, batch_size)` (feedback_ai/service.py); the
    stand-in once took only `texts`, and the eval failed at its first ingest."""
    embedder = object.__new__(CachedEmbedder)  # no real model: every text is in the cache
    embedder.lookup = {"a": np.ones(3), "b": np.zeros(3)}
    out = embedder.embed(["b", "a"], None, 512)
    assert out.dtype == np.float32 and out.tolist() == [[0, 0, 0], [1, 1, 1]]
