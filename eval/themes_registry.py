"""Theme ids across refits, through the product's own path (ingest -> store -> ThemeService).

For each dataset (BANKING77 all 13,083 queries; CLINC150 all 22,500 in-scope queries):
1. a seeded 90% of the queries are ingested and refitted (seed 42)           -> refit A
2. refit again with another seed (7) and the stored mentions in shuffled order -> refit B:
   share of A's themes that keep their id in B (by count and weighted by items), and the ARI
   between A's and B's item assignments (unassigned items form one label);
3. the other 10% are ingested (live assignment) and refitted again (seed 42)  -> refit C:
   share of B's themes that keep their id in C.
Also reported per refit: NMI / ARI against the gold intents, coverage (items in a theme) and
the number of themes against gold; and the refit's wall time.

Vectors come from the eval cache (the default embedder's, see eval/labelled.py), looked up by
text, so the ingest stage does not re-embed; everything after it is the product's code.
Run: `python -m eval.themes_registry` -> eval/results/themes_registry.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from eval import labelled as L
from eval.corpus import ROOT
from feedback_ai import ids
from feedback_ai.config import Settings, StoreBackend
from feedback_ai.embed._base import Embedder

RESULTS = ROOT / "eval" / "results"
WORKSPACE = "eval"


class CachedEmbedder(Embedder):
    """The default embedder, answering from the eval cache for texts it has seen."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        super().__init__()
        self.inner = L.default_embedder()
        self.name, self.variant, self.dim = self.inner.name, self.inner.variant, self.inner.dim
        self.lookup = {t.strip(): v for t, v in zip(texts, vectors, strict=True)}

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts)

    def embed(self, texts: Any, progress: Any = None, batch_size: Any = None) -> np.ndarray:
        """As `Embedder.embed` (the pipeline passes a progress callback and a batch size)."""
        missing = [t for t in texts if t not in self.lookup]
        if missing:
            self.lookup.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self.lookup[t] for t in texts]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def dataset(name: str) -> tuple[list[str], list[str]]:
    if name == "banking77":
        splits = [L.load("banking77", s) for s in ("train", "test")]
    else:
        splits = [L.load("clinc150", s) for s in ("train", "val", "test")]
    texts = [t for s in splits for t in s.texts]
    labels = [label for s in splits for label in s.labels]
    return texts, labels


def build(data_dir: Path, texts: list[str]) -> Any:
    from feedback_ai.factory import build_service

    settings = Settings(data_dir=data_dir, store_backend=StoreBackend.edge, task_batch_size=512)
    service = build_service(settings, embedder=CachedEmbedder(texts, L.embed(texts)))
    service.records.ensure_workspace(WORKSPACE)
    return service


def ingest(service: Any, texts: list[str]) -> dict[str, str]:
    """Ingest synchronously; text (stripped) -> item id."""
    items = [{"text": t, "source": "eval"} for t in texts]
    for start in range(0, len(items), 1000):
        service.submit(WORKSPACE, items[start : start + 1000], service.process)
    service.store.flush()
    return {t.strip(): ids.item_id(WORKSPACE, "eval", None, t.strip()) for t in texts}


def shuffled_load(themes: Any, seed: int) -> None:
    """Make the next refits read the stored mentions in a seeded random order."""
    original = type(themes).load

    def load(ws: str, progress: Any) -> Any:
        corpus = original(themes, ws, progress)
        order = np.random.default_rng(seed).permutation(len(corpus))
        corpus.point_ids = [corpus.point_ids[i] for i in order]
        corpus.item_ids = [corpus.item_ids[i] for i in order]
        corpus.texts = [corpus.texts[i] for i in order]
        corpus.mention_index = corpus.mention_index[order]
        corpus.vectors = corpus.vectors[order]
        corpus.sentiment = corpus.sentiment[order]
        return corpus

    themes.load = load


def assignment(themes: Any) -> dict[str, str]:
    """item id -> its theme (the one with the most similar mention); unassigned items absent."""
    out: dict[str, tuple[float, str]] = {}
    for theme in themes.db.themes(WORKSPACE):
        for row in themes.db.theme_rows(WORKSPACE, theme.id):
            best = out.get(row["item_id"])
            if best is None or row["similarity"] > best[0]:
                out[row["item_id"]] = (row["similarity"], theme.id)
    return {item: theme for item, (_, theme) in out.items()}


def refit(themes: Any, seed: int) -> tuple[dict[str, Any], dict[str, str], float]:
    themes.settings = themes.settings.model_copy(update={"theme_seed": seed})
    start = time.perf_counter()
    result = themes.refit(WORKSPACE)
    return result, assignment(themes), time.perf_counter() - start


def quality(assigned: dict[str, str], gold: dict[str, str]) -> dict[str, Any]:
    items = sorted(gold)
    pred = [assigned.get(i, "-1") for i in items]
    truth = [gold[i] for i in items]
    return {
        "nmi": round(float(normalized_mutual_info_score(truth, pred)), 4),
        "ari": round(float(adjusted_rand_score(truth, pred)), 4),
        "coverage": round(sum(i in assigned for i in items) / len(items), 4),
        "themes": len(set(assigned.values())),
        "gold": len(set(truth)),
    }


def kept(before: dict[str, str], after: dict[str, str]) -> dict[str, float]:
    ids_before, ids_after = set(before.values()), set(after.values())
    weight = {t: 0 for t in ids_before}
    for theme in before.values():
        weight[theme] += 1
    same = ids_before & ids_after
    return {
        "themes_before": len(ids_before),
        "kept_share": round(len(same) / max(len(ids_before), 1), 4),
        "kept_share_by_items": round(sum(weight[t] for t in same) / max(len(before), 1), 4),
    }


def agreement(a: dict[str, str], b: dict[str, str]) -> float:
    items = sorted(set(a) | set(b))
    return round(
        float(
            adjusted_rand_score([a.get(i, "-1") for i in items], [b.get(i, "-1") for i in items])
        ),
        4,
    )


def run(name: str) -> dict[str, Any]:
    texts, labels = dataset(name)
    rng = np.random.default_rng(0)
    late = set(rng.choice(len(texts), len(texts) // 10, replace=False).tolist())
    early_texts = [t for i, t in enumerate(texts) if i not in late]
    late_texts = [t for i, t in enumerate(texts) if i in late]
    with tempfile.TemporaryDirectory() as tmp:
        service = build(Path(tmp), texts)
        item_of = ingest(service, early_texts)
        gold = {
            item_of[t.strip()]: label
            for t, label in zip(texts, labels, strict=True)
            if t.strip() in item_of
        }
        themes = service.themes
        a_result, a, a_s = refit(themes, 42)
        shuffled_load(themes, seed=1)
        b_result, b, b_s = refit(themes, 7)
        themes.load = type(themes).load.__get__(themes)
        item_of.update(ingest(service, late_texts))
        gold_all = {item_of[t.strip()]: label for t, label in zip(texts, labels, strict=True)}
        c_result, c, c_s = refit(themes, 42)
        service.close()
    return {
        "dataset": name,
        "queries": len(texts),
        "refit_a": {**quality(a, gold), "seconds": round(a_s, 1), "stats": a_result},
        "refit_b": {**quality(b, gold), "seconds": round(b_s, 1), "stats": b_result},
        "a_to_b": {**kept(a, b), "assignment_ari": agreement(a, b)},
        "refit_c": {**quality(c, gold_all), "seconds": round(c_s, 1), "stats": c_result},
        "b_to_c": kept(b, c),
        "load_avg_end": round(os.getloadavg()[0], 2),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Theme ids across refits (product path)",
        "",
        "Reproduce: `python -m eval.themes_registry`. Targets: ARI between two refits (other "
        "seed, shuffled input) >= 0.90 and >= 90% of themes keep their id; after adding 10% "
        "new data >= 90% keep their id.",
        "",
        "| dataset | refit | NMI | ARI | coverage | themes (gold) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key in ("refit_a", "refit_b", "refit_c"):
            q = r[key]
            lines.append(
                f"| {r['dataset']} | {key[-1].upper()} | {q['nmi']} | {q['ari']} | "
                f"{q['coverage']} | {q['themes']} ({q['gold']}) | {q['seconds']} |"
            )
    lines += [
        "",
        "| dataset | A->B ids kept | A->B kept (by items) | A->B assignment ARI | B->C ids kept "
        "| B->C kept (by items) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ab, bc = r["a_to_b"], r["b_to_c"]
        lines.append(
            f"| {r['dataset']} | {ab['kept_share']} | {ab['kept_share_by_items']} | "
            f"{ab['assignment_ari']} | {bc['kept_share']} | {bc['kept_share_by_items']} |"
        )
    lines += [
        "",
        "A: 90% of the queries, seed 42. B: the same, seed 7, mentions in shuffled order. "
        "C: all queries (the last 10% ingested after B, live-assigned, then refitted), seed 42. "
        "Quality is against the gold intents of the ingested queries; unassigned items count "
        "as one extra label.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["banking77", "clinc150"])
    args = parser.parse_args()
    results = [run(name) for name in args.datasets]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "themes_registry.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "themes_registry.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
