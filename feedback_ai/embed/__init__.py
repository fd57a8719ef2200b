"""Embedding: texts -> L2-normalised float32 vectors.

`make_embedder(settings)` is the one place that builds the configured backend:
- `torch`: plain sentence-transformers encode of the packaged model (the reference);
- `onnx` / `onnx-int8`: the same model exported locally to ONNX (fp32 / dynamic int8), run with
  ONNX Runtime; exported on first use into `<models_dir>/artifacts/<model>/`, sha256-verified;
- `auto`: the fastest variant that passed the quality gate recorded in `<models_dir>/registry.json`
  (recall@10 within one point of torch on the duplicate-retrieval eval), else torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

from feedback_ai.config import EmbedBackend, Settings
from feedback_ai.embed._base import Embedder
from feedback_ai.embed.packaged import PackagedModel, packaged_model
from feedback_ai.embed.registry import Registry, choose_variant

__all__ = ["Embedder", "build_embedder", "make_embedder"]

log = logging.getLogger(__name__)


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedder; `auto` falls back to torch if the fast variant cannot be built."""
    model = packaged_model(settings.embed_model)
    registry = Registry.load(settings.models_dir)
    size, models_dir = settings.embed_batch_size, settings.models_dir
    if settings.embed_backend is not EmbedBackend.auto:
        return build_embedder(model, settings.embed_backend.value, models_dir, size, registry)
    variant, why = choose_variant(registry, model.name)
    log.info("embed_backend=auto -> %s: %s", variant, why)
    try:
        return build_embedder(model, variant, models_dir, size, registry)
    except Exception:
        if variant == "torch":
            raise
        log.exception("embed_backend=auto: building %s failed; using torch", variant)
        return build_embedder(model, "torch", models_dir, size, registry)


def build_embedder(
    model: PackagedModel,
    variant: str,
    models_dir: Path,
    batch_size: int = 64,
    registry: Registry | None = None,
) -> Embedder:
    """The embedder for one concrete variant ("torch", "onnx", "onnx-int8")."""
    if variant == "torch":
        from feedback_ai.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model.path, batch_size, name=model.name)
    from feedback_ai.embed.artifacts import ensure_artifact
    from feedback_ai.embed.onnx import OnnxEmbedder

    expected = (registry or Registry.load(models_dir)).expected_sha256(model.name)
    path = ensure_artifact(model, variant, Path(models_dir), expected)
    return OnnxEmbedder(
        path,
        model.path,
        name=model.name,
        variant=variant,
        dim=model.dim,
        max_seq_length=model.max_seq_length,
        batch_size=batch_size,
    )
