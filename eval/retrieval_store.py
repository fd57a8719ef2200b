"""Duplicate retrieval through the product's own search path: `EdgeStore.search`, dense vs hybrid.

    python -m eval.retrieval_store

Same protocol and data as eval/retrieval.py (gitbugs-duplicates, Hadoop + SeaMonkey: each report
with a gold duplicate queries all other reports of its project), but ranked by the embedded
Qdrant engine as the API ranks: dense = cosine on the configured embedder (`auto`), hybrid =
dense + Qdrant's BM25 sparse vectors (IDF modifier) fused by RRF (k=60) inside the engine.
Each report is one point (text = summary + description, as in eval/retrieval.py). The engine
returns the top 50, so MRR is MRR@50 (a duplicate ranked below 50 counts 0).
Writes eval/results/retrieval_store.{json,md}.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eval.corpus import cache_key, embeddings
from eval.retrieval import KS, PROJECTS, Project, load_project, paired_bootstrap
from feedback_ai.config import Settings
from feedback_ai.factory import make_embedder
from feedback_ai.store._base import MentionPoint
from feedback_ai.store.edge import EdgeStore

RESULTS = Path(__file__).resolve().parent / "results"
DEPTH = 50
WS = "eval"


def first_hit_ranks(store: EdgeStore, p: Project, vectors: np.ndarray, hybrid: bool) -> np.ndarray:
    ranks = []
    for q in sorted(p.duplicates):
        hits = store.search(WS, vectors[q], DEPTH + 1, text=p.texts[q] if hybrid else None)
        order = [int(h.item_id) for h in hits if int(h.item_id) != q]
        found = [i + 1 for i, idx in enumerate(order) if idx in p.duplicates[q]]
        ranks.append(found[0] if found else np.inf)
    return np.asarray(ranks, dtype=np.float64)


def load(store: EdgeStore, p: Project, vectors: np.ndarray) -> None:
    now = datetime.now(UTC)
    store.upsert(
        [
            MentionPoint(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.name}/{i}")),
                vector=vectors[i],
                workspace=WS,
                item_id=str(i),
                mention_index=0,
                text=text,
                source=p.name,
                created_at=now,
            )
            for i, text in enumerate(p.texts)
        ]
    )
    store.optimize()


def summarise(ranks: np.ndarray) -> dict[str, float]:
    out = {f"recall@{k}": float(np.mean(ranks <= k)) for k in KS}
    out[f"mrr@{DEPTH}"] = float(np.mean(np.where(np.isfinite(ranks), 1.0 / ranks, 0.0)))
    return out


def main() -> None:
    embedder = make_embedder(Settings())
    ranks: dict[str, list[np.ndarray]] = {"dense": [], "hybrid": []}
    for name in PROJECTS:
        p = load_project(name)
        vectors = embeddings(p.texts, cache_key(embedder), embedder.embed)
        with tempfile.TemporaryDirectory() as tmp:
            store = EdgeStore(Path(tmp), vectors.shape[1])
            load(store, p, vectors)
            for mode in ranks:
                ranks[mode].append(first_hit_ranks(store, p, vectors, mode == "hybrid"))
            store.close()
    pooled = {mode: np.concatenate(r) for mode, r in ranks.items()}
    finite = {m: np.where(np.isfinite(r), r, DEPTH + 1) for m, r in pooled.items()}
    report: dict[str, Any] = {
        "embedder": f"{embedder.name} ({getattr(embedder, 'variant', 'torch')})",
        "queries": len(pooled["dense"]),
        "metrics": {mode: summarise(r) for mode, r in pooled.items()},
        "hybrid_vs_dense": paired_bootstrap(finite["dense"], finite["hybrid"]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retrieval_store.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Duplicate retrieval through EdgeStore.search (the API's ranking)",
        "",
        f"`python -m eval.retrieval_store`; {report['queries']} queries; {report['embedder']}.",
        "",
        f"| mode | recall@1 | recall@5 | recall@10 | MRR@{DEPTH} |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, m in report["metrics"].items():
        lines.append(
            f"| {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} "
            f"| {m[f'mrr@{DEPTH}']:.3f} |"
        )
    lines += ["", f"Hybrid vs dense (paired bootstrap): `{json.dumps(report['hybrid_vs_dense'])}`"]
    (RESULTS / "retrieval_store.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
