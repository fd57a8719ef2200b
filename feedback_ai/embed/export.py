"""Converting a packaged sentence-transformers model to ONNX, locally, from its safetensors weights.

Two steps, each a maintained tool:
1. `torch.onnx.export` (TorchScript exporter) of transformer + mean pooling + L2 normalisation, so
   the graph's output is the sentence embedding itself;
2. `onnxruntime.quantization.quantize_dynamic`: int8 weights, per output channel (per-tensor
   scales lose noticeably more: min cosine to fp32 ~0.91 vs ~0.98 on BANKING77).
ONNX Runtime fuses the graph itself when a session loads it. Fusing offline first with its
transformer optimizer (`model_type="bert"`) measured no faster for fp32 and ~15% slower once
quantised (the fused Attention op quantises worse for speed), so it is not done.
Only these functions import torch; serving the ONNX artifacts does not. Each step is checked against
the step before on a few sentences (`check_parity`), so a broken export fails loudly here.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from feedback_ai.embed.packaged import PackagedModel

log = logging.getLogger(__name__)

OPSET = 17
# Bump when the export steps change: cached artifacts of another recipe are exported again.
RECIPE = "2: torchscript opset17 + mean pooling + l2; int8 dynamic per-channel QInt8, unfused"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PARITY_TEXTS = [
    "I still have not received my new card.",
    "How do I reset my password? The link in the email does not work and support never answers.",
    "export to csv",
    "The app crashes every time I open the settings page on Android 14 after the last update, "
    "which makes it impossible to change my notification preferences or log out cleanly.",
]
# Minimum cosine between a step's output and its input's, on PARITY_TEXTS.
MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.95}


def export_fp32(model: PackagedModel, dest: Path) -> None:
    """Export `model` (transformer + pooling + normalisation) to an ONNX graph at `dest`."""
    import torch
    from transformers import AutoModel

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    transformer = AutoModel.from_pretrained(
        str(model.path), attn_implementation="eager", local_files_only=True
    ).eval()
    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    log.info("  torch.onnx.export (opset %d)", OPSET)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript tracer warns about Python branches in the mask code; parity is checked.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEmbedding(transformer),
            dummy,
            str(dest),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    check_parity(model, dest, "onnx", reference=_sentence_transformers_reference(model))


def quantize_int8(model: PackagedModel, fp32: Path, dest: Path) -> None:
    """Dynamic int8 quantisation of the fp32 graph (weights per channel, activations per batch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("  onnxruntime.quantization.quantize_dynamic (int8, per channel)")
    with _quiet_onnxruntime_tools():
        quantize_dynamic(
            str(fp32),
            str(dest),
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    check_parity(model, dest, "onnx-int8", reference=_onnx_embed(model, fp32))


def check_parity(model: PackagedModel, path: Path, variant: str, reference: np.ndarray) -> None:
    cosine = (_onnx_embed(model, path) * reference).sum(axis=1)
    log.info("  parity of %s: min cosine %.5f over %d texts", variant, cosine.min(), len(cosine))
    if cosine.min() < MIN_COSINE[variant]:
        raise RuntimeError(
            f"{variant} export of {model.name} diverges: min cosine {cosine.min():.4f} "
            f"< {MIN_COSINE[variant]}"
        )


def _sentence_transformers_reference(model: PackagedModel) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model.path), device="cpu", local_files_only=True)
    return reference.encode(PARITY_TEXTS, normalize_embeddings=True, convert_to_numpy=True)


def _onnx_embed(model: PackagedModel, path: Path) -> np.ndarray:
    from feedback_ai.embed.onnx import OnnxEmbedder

    embedder = OnnxEmbedder(
        path, model.path, name=model.name, variant="check", dim=model.dim, threads=1
    )
    return embedder.embed(PARITY_TEXTS)


@contextlib.contextmanager
def _quiet_onnxruntime_tools() -> Iterator[None]:
    """ORT's quantizer logs a line per node, on the root logger: hide them."""
    names = [""]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.ERROR))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
