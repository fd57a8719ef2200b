"""The fast path: the packaged model exported to ONNX (see `export.py`), run with ONNX Runtime.

The exported graph already does mean pooling and L2 normalisation, so the runtime here is just the
model's fast tokenizer (`tokenizer.json`) and one `InferenceSession.run`; torch is not imported.
Queries and documents go through the same code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from feedback_ai.embed._base import Embedder

# A batch is split into runs of at most this many texts, each padded only to its own longest text
# (the texts arrive length-sorted from `Embedder.embed`, so runs are near-uniform in length).
MAX_RUN = 32


def cpu_threads() -> int:
    """CPUs this process may use (respects CPU affinity where the OS exposes it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def load_tokenizer(model_dir: Path, max_seq_length: int):
    """The model's fast tokenizer, truncating at the model's window and padding to the longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_seq_length)
    pad_id = tokenizer.token_to_id("[PAD]") or 0
    tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")  # dynamic: pad to the longest
    return tokenizer


def create_session(onnx_path: Path, threads: int | None = None, spin: bool = False):
    """An ONNX Runtime CPU session: intra-op threads = usable CPUs, no inter-op pool.

    Worker threads sleep between ops instead of spin-waiting (`spin=False`): on a 2-core box shared
    with the API, workers and the store, spinning burnt half the CPU time and halved throughput
    under load; on an idle box it made no measurable difference (eval/results/bench_embed.md).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder(Embedder):
    """Embeds with an exported sentence-embedding ONNX graph (inputs: ids, mask, token types)."""

    def __init__(
        self,
        onnx_path: str | Path,
        model_dir: str | Path,
        *,
        name: str,
        variant: str,
        dim: int,
        max_seq_length: int = 256,
        batch_size: int = 64,
        threads: int | None = None,
        spin: bool = False,
    ) -> None:
        super().__init__(batch_size)
        self.name, self.variant, self.dim = name, variant, dim
        self.onnx_path = Path(onnx_path)
        self.tokenizer = load_tokenizer(Path(model_dir), max_seq_length)
        self.session = create_session(self.onnx_path, threads, spin)
        self._input_names = {i.name for i in self.session.get_inputs()}

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), MAX_RUN):
            idx = order[start : start + MAX_RUN]
            out[idx] = self._run([texts[i] for i in idx])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.zeros_like(ids),
        }
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)
