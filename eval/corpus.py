"""Real texts from ../shared/data for benchmarks, and their embeddings, computed once and cached."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / "eval" / "cache"


def real_texts() -> list[str]:
    """~90k real short texts: BANKING77, CLINC150, app reviews, bug report summaries."""
    texts: list[str] = []
    for split in ("train", "test"):
        with (SHARED / "banking77" / f"{split}.csv").open() as fh:
            texts += [row["text"] for row in csv.DictReader(fh)]
    clinc = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    texts += [text for rows in clinc.values() for text, _ in rows]
    for path in sorted((SHARED / "idea-app-reviews-timeseries").glob("*/total_info.txt")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("******")
            if len(parts) >= 2 and parts[1].strip():
                texts.append(parts[1].strip()[:500])
    for path in sorted((SHARED / "gitbugs-duplicates").glob("*/*_bugs.csv")):
        with path.open(errors="replace") as fh:
            texts += [row["Summary"] for row in csv.DictReader(fh) if row.get("Summary")]
    return list(dict.fromkeys(t for t in texts if t.strip()))


def cache_key(embedder: object) -> str:
    """Model name and variant (torch / onnx / onnx-int8): vectors differ between variants."""
    return f"{getattr(embedder, 'name', 'model')}-{getattr(embedder, 'variant', 'torch')}"


def embeddings(texts: list[str], embedder_name: str, embed) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`embed(texts) -> array`, cached under eval/cache/ by model and corpus hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"emb-{embedder_name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    np.save(path, vectors)
    return vectors


def replicate(vectors: np.ndarray, n: int, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Reach n vectors: the real ones first, then copies with Gaussian noise, re-normalised."""
    if n <= len(vectors):
        return vectors[:n]
    rng = np.random.default_rng(seed)
    extra = vectors[rng.integers(0, len(vectors), n - len(vectors))]
    extra = extra + rng.normal(0, noise / np.sqrt(vectors.shape[1]), extra.shape).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.vstack([vectors, extra.astype(np.float32)])
