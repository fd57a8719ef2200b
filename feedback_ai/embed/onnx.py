"""The fast path: the packaged model exported to ONNX (see `export.py`), run with ONNX Runtime.

The exported graph already does mean pooling and L2 normalisation, so the runtime here is just the
model's fast tokenizer (`tokenizer.json`) and one `InferenceSession.run`; torch is not imported.
Queries and documents go through the same code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from feedback_ai.embed._base import Embedder

# A batch is tokenised once, sorted by token count and cut into runs (one `InferenceSession.run`
# each), every run padded only to its own longest text. Where to cut weighs the padding a longer
# run adds against the fixed cost of one more call: ~2 ms, the compute of ~10 tokens (measured
# with MiniLM-L6 int8 on this 2-core box: ~0.2 ms per token per thread). On bench_ingest's 5,000
# short queries in task-sized batches of 256 this feeds the model 81k tokens for the texts' 79k,
# where fixed runs of 32 texts sorted by characters fed 110k (~35% more work per text).
RUN_COST_TOKENS = 10
# Most padded tokens in one session run (a lone text may exceed it): attention holds
# run size x 12 heads x length^2 floats. A batch of 512 texts of 256 tokens peaked at 4.8 GB RSS
# uncapped, 1.7 GB capped at 16,384, against 0.94 GB in batches of 64 (32 texts a lane). 8,192
# is those 32 x 256 tokens, and still one run a lane for 256 short texts (~20 tokens).
MAX_RUN_TOKENS = 8_192
# How a batch uses the CPUs. "lanes": the batch's texts, in length order, are dealt round-robin
# into one share per CPU, and each share runs on its own Python thread through one shared
# single-threaded session (ONNX Runtime releases the GIL and allows concurrent `run` calls), so the
# shares are alike in length and finish together. "intra-op": one share, each op split across an
# intra-op thread pool. Lanes measured ~15% more texts/s and ~20% more texts per CPU-second on this
# 2-vCPU box (eval/results/bench_embed.md): small ops parallelise poorly within the op.
PARALLEL_MODES = ("lanes", "intra-op")


def cpu_threads() -> int:
    """CPUs this process may use (respects CPU affinity where the OS exposes it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def load_tokenizer(model_dir: Path, max_seq_length: int):
    """The model's fast tokenizer, truncating at the model's window; no padding (runs pad)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def plan_runs(
    lengths: Sequence[int], run_cost: int = RUN_COST_TOKENS, max_tokens: int = MAX_RUN_TOKENS
) -> list[tuple[int, int]]:
    """Cut ascending `lengths` into runs `[start, end)` that minimise the padded tokens (each run
    padded to its last, longest, length) plus `run_cost` per run, with at most `max_tokens`
    padded tokens in a run of two or more texts: dynamic programming, O(n^2)."""
    ls = np.asarray(lengths, dtype=np.int64)
    best = np.zeros(len(ls) + 1, dtype=np.int64)  # best[j]: cheapest plan of the first j
    cut = np.zeros(len(ls) + 1, dtype=np.int64)  # where the last run of that plan starts
    too_big = np.iinfo(np.int64).max // 2
    for end in range(1, len(ls) + 1):
        padded = (end - np.arange(end)) * ls[end - 1]
        costs = best[:end] + np.where(padded > max_tokens, too_big, padded)
        costs[end - 1] = best[end - 1] + ls[end - 1]  # a run of one text is always allowed
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]] + run_cost
    runs, end = [], len(ls)
    while end > 0:
        runs.append((int(cut[end]), end))
        end = int(cut[end])
    return runs[::-1]


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
        parallel: str = "lanes",
    ) -> None:
        """`threads`: CPUs to use (default: all this process may use). `parallel`: how (see
        `PARALLEL_MODES`); with one thread both are the same single-threaded session."""
        super().__init__(batch_size)
        if parallel not in PARALLEL_MODES:
            raise ValueError(f"parallel must be one of {PARALLEL_MODES}, not {parallel!r}")
        self.name, self.variant, self.dim = name, variant, dim
        self.onnx_path, self.tokenizer_dir = Path(onnx_path), Path(model_dir)
        self.tokenizer = load_tokenizer(self.tokenizer_dir, max_seq_length)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        threads = threads or cpu_threads()
        self.lanes = threads if parallel == "lanes" else 1
        self.session = create_session(self.onnx_path, threads // self.lanes, spin)
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._pool = (
            ThreadPoolExecutor(self.lanes - 1, thread_name_prefix="onnx-lane")
            if self.lanes > 1
            else None
        )

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        token_ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        shares = [order[k :: self.lanes] for k in range(min(self.lanes, len(texts)))]
        futures = []
        if len(shares) > 1:
            assert self._pool is not None
            futures = [self._pool.submit(self._embed_share, token_ids, s) for s in shares[1:]]
        for idx, vectors in self._embed_share(token_ids, shares[0]):
            out[idx] = vectors
        for future in futures:
            for idx, vectors in future.result():
                out[idx] = vectors
        return out

    def _embed_share(
        self, token_ids: list[list[int]], share: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Embed the texts at `share` (ascending length) in runs: [(their indices, vectors)]."""
        out = []
        for start, end in plan_runs([len(token_ids[i]) for i in share]):
            idx = share[start:end]
            out.append((idx, self._run([token_ids[i] for i in idx])))
        return out

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        """One session call on texts' token ids, padded to the longest of them."""
        ids = np.full((len(token_ids), max(map(len, token_ids))), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(token_ids):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)
