"""Duplicate retrieval on gitbugs-duplicates: dense (torch / ONNX fp32 / int8), BM25, hybrid.

For every report with a gold duplicate (links read both ways, both reports present), rank all other
reports of its project; a hit is any gold duplicate. Text = Summary + Description, whitespace
collapsed, cut at 2,000 characters (the model itself reads the first 256 word pieces).
BM25: `bm25s` (Lucene variant, k1=1.5, b=0.75, English stopwords, Snowball stemmer).
Hybrid: reciprocal-rank fusion of dense and BM25, score = sum 1/(60 + rank) (Cormack et al. 2009;
k=60 is the paper's constant, not tuned here). Dense vs hybrid is compared with a paired bootstrap
over queries. The figures also go into `models/registry.json` (the `auto` quality gate reads them).

    python -m eval.retrieval            # writes eval/results/retrieval.{json,md}, updates registry
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eval.corpus import ROOT, SHARED, embeddings
from feedback_ai.embed import build_embedder
from feedback_ai.embed.packaged import packaged_model
from feedback_ai.embed.registry import (
    GATE_METRIC,
    GATE_TOLERANCE,
    Registry,
    Variant,
    record_for,
)

DATA = SHARED / "gitbugs-duplicates"
PROJECTS = {
    "hadoop": ("hadoop/hadoop_bugs.csv", "hadoop/hadoop_bugs-combined.csv"),
    "seamonkey": ("seamonkey/SeaMonkey_bugs.csv", "seamonkey/SeaMonkey_bugs-combined.csv"),
}
MAX_CHARS = 2_000
KS = (1, 5, 10)
RRF_K = 60
VARIANTS: tuple[Variant, ...] = ("torch", "onnx", "onnx-int8")
BOOTSTRAP = 10_000


@dataclass
class Project:
    name: str
    ids: list[str]
    texts: list[str]
    duplicates: dict[int, set[int]]  # query index -> indices of its gold duplicates


def report_text(row: dict[str, str]) -> str:
    text = f"{row['Summary'].strip()}. {row.get('Description') or ''}"
    return re.sub(r"\s+", " ", text).strip()[:MAX_CHARS]


def load_project(name: str) -> Project:
    bugs_file, links_file = PROJECTS[name]
    with (DATA / bugs_file).open(errors="replace") as fh:
        rows = list(csv.DictReader(fh))
    ids = [row["Issue id"].strip() for row in rows]
    index = {bug_id: i for i, bug_id in enumerate(ids)}
    duplicates: dict[int, set[int]] = {}
    with (DATA / links_file).open() as fh:
        for row in csv.DictReader(fh):
            a = index.get(row["Issue id"].strip())
            for other in row["Duplicate id"].split(","):
                b = index.get(other.strip())
                if a is not None and b is not None and a != b:
                    duplicates.setdefault(a, set()).add(b)
                    duplicates.setdefault(b, set()).add(a)
    return Project(name, ids, [report_text(r) for r in rows], duplicates)


def ranks_of_first_hit(scores: np.ndarray, queries: list[int], project: Project) -> np.ndarray:
    """1-based rank of the best-ranked gold duplicate, per query; the query itself is excluded."""
    out = np.empty(len(queries), dtype=np.int64)
    for row, q in enumerate(queries):
        s = scores[row].astype(np.float64).copy()
        s[q] = -np.inf
        order = np.argsort(-s, kind="stable")
        positions = np.flatnonzero(np.isin(order, list(project.duplicates[q])))
        out[row] = positions[0] + 1
    return out


def dense_scores(vectors: np.ndarray, queries: list[int]) -> np.ndarray:
    return vectors[queries] @ vectors.T


def bm25_scores(texts: list[str], queries: list[int]) -> np.ndarray:
    import bm25s
    import Stemmer

    tokens = bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    return np.stack([retriever.get_scores(tokens[q]) for q in queries])


def rrf_scores(*score_sets: np.ndarray, queries: list[int]) -> np.ndarray:
    """Reciprocal-rank fusion of full rankings: sum over methods of 1 / (RRF_K + rank)."""
    fused = np.zeros_like(score_sets[0], dtype=np.float64)
    for scores in score_sets:
        s = scores.astype(np.float64).copy()
        s[np.arange(len(queries)), queries] = -np.inf
        ranks = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1) + 1
        fused += 1.0 / (RRF_K + ranks)
    return fused


def summarise(ranks: np.ndarray) -> dict[str, float]:
    out = {f"recall@{k}": float(np.mean(ranks <= k)) for k in KS}
    out["mrr"] = float(np.mean(1.0 / ranks))
    return out


def paired_bootstrap(dense: np.ndarray, hybrid: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """hybrid minus dense on recall@10 and MRR: mean difference and a 95% bootstrap interval."""
    a, b = dense, hybrid
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (BOOTSTRAP, len(a)))
    out: dict[str, Any] = {}
    for key, fa, fb in (
        ("recall@10", (a <= 10).astype(float), (b <= 10).astype(float)),
        ("mrr", 1.0 / a, 1.0 / b),
    ):
        diffs = (fb[idx] - fa[idx]).mean(axis=1)
        low, high = np.percentile(diffs, [2.5, 97.5])
        out[key] = {"delta": float((fb - fa).mean()), "ci95": [float(low), float(high)]}
    out["hit@10_only_hybrid"] = int(np.sum((b <= 10) & (a > 10)))
    out["hit@10_only_dense"] = int(np.sum((a <= 10) & (b > 10)))
    return out


def embed_all(projects: list[Project], models_dir: Path) -> tuple[dict, dict, dict]:
    """Per variant and project (cached in eval/cache/): the corpus embedded in batches, and the
    queries embedded one at a time (as a search request embeds them: dynamic int8 quantisation
    scales activations per batch, so a text alone gets a slightly different vector); timings."""
    model = packaged_model("all-MiniLM-L6-v2")
    registry = Registry.load(models_dir)
    vectors: dict[str, dict[str, np.ndarray]] = {}
    alone: dict[str, dict[str, np.ndarray]] = {}
    info: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        embedder = build_embedder(model, variant, models_dir, 64, registry)
        record = record_for(model, variant, models_dir)
        key = f"{model.name}-{variant}-{record.sha256[:12]}"
        vectors[variant], alone[variant] = {}, {}
        started = time.perf_counter()
        for p in projects:
            vectors[variant][p.name] = embeddings(p.texts, key, embedder.embed)
            queries = [p.texts[q] for q in sorted(p.duplicates)]
            alone[variant][p.name] = embeddings(
                queries,
                f"{key}-alone",
                lambda ts, e=embedder: np.stack([e.embed_query(t) for t in ts]),
            )
        info[variant] = {"sha256": record.sha256, "seconds": time.perf_counter() - started}
        logging.info("%s: embedded (or loaded) in %.1f s", variant, info[variant]["seconds"])
    return vectors, alone, info


def evaluate(
    projects: list[Project], vectors: dict, alone: dict
) -> tuple[dict, dict[str, np.ndarray]]:
    """Per method: metrics per project and pooled; and the pooled first-hit ranks."""
    per_method: dict[str, dict[str, np.ndarray]] = {}
    for p in projects:
        queries = sorted(p.duplicates)
        bm25 = bm25_scores(p.texts, queries)
        scores = {"bm25": bm25}
        for variant in VARIANTS:
            dense = dense_scores(vectors[variant][p.name], queries)
            scores[f"dense-{variant}"] = dense
            scores[f"hybrid-{variant}"] = rrf_scores(dense, bm25, queries=queries)
            scores[f"dense-{variant}, query alone"] = (
                alone[variant][p.name] @ vectors[variant][p.name].T
            )
        for method, s in scores.items():
            per_method.setdefault(method, {})[p.name] = ranks_of_first_hit(s, queries, p)
    metrics: dict[str, dict] = {}
    pooled: dict[str, np.ndarray] = {}
    for method, by_project in per_method.items():
        pooled[method] = np.concatenate([by_project[p.name] for p in projects])
        metrics[method] = {
            "all": summarise(pooled[method]),
            **{name: summarise(r) for name, r in by_project.items()},
        }
    return metrics, pooled


def gate(metrics: dict) -> dict[str, Any]:
    """A fast variant passes if recall@10 is within 1 point of torch's, batched and query alone."""
    base = metrics["dense-torch"]["all"][GATE_METRIC]
    out = {}
    for variant in ("onnx", "onnx-int8"):
        worst = min(
            metrics[f"dense-{variant}"]["all"][GATE_METRIC],
            metrics[f"dense-{variant}, query alone"]["all"][GATE_METRIC],
        )
        out[variant] = {
            GATE_METRIC: worst,
            "delta_vs_torch": worst - base,
            "passes": worst >= base - GATE_TOLERANCE,
        }
    return out


def update_registry(models_dir: Path, metrics: dict, n_queries: int) -> None:
    model = packaged_model("all-MiniLM-L6-v2")
    registry = Registry.load(models_dir)
    for variant in VARIANTS:
        record = record_for(model, variant, models_dir)
        record.metrics = {
            "retrieval": {
                "dataset": "gitbugs-duplicates (hadoop + seamonkey)",
                "queries": n_queries,
                **metrics[f"dense-{variant}"]["all"],
                "query_alone": metrics[f"dense-{variant}, query alone"]["all"],
                "hybrid_rrf": metrics[f"hybrid-{variant}"]["all"],
                "eval": "eval/results/retrieval.json",
                "date": datetime.now(UTC).date().isoformat(),
            }
        }
        registry.upsert(record)
    registry.save()


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "retrieval.md").write_text(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    n = report["queries"]
    lines = [
        "# Duplicate retrieval: gitbugs-duplicates (Hadoop + SeaMonkey)",
        "",
        f"`python -m eval.retrieval`. {n['all']} queries (hadoop {n['hadoop']}, seamonkey "
        f"{n['seamonkey']}): each report with a gold duplicate ranks all other reports of its "
        "project. recall@k = share of queries with a gold duplicate in the top k.",
        "",
        "| method | recall@1 | recall@5 | recall@10 | MRR | hadoop R@10 | seamonkey R@10 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, m in report["metrics"].items():
        a = m["all"]
        lines.append(
            f"| {method} | {a['recall@1']:.3f} | {a['recall@5']:.3f} | {a['recall@10']:.3f} "
            f"| {a['mrr']:.3f} | {m['hadoop']['recall@10']:.3f} "
            f"| {m['seamonkey']['recall@10']:.3f} |"
        )
    lines += [
        "",
        "## Quality gate (recall@10 within 1 point of torch, the worse of batched and query alone)",
        "",
    ]
    for variant, g in report["gate"].items():
        verdict = "passes" if g["passes"] else "fails"
        lines.append(f"- {variant}: {g['recall@10']:.3f} ({g['delta_vs_torch']:+.3f}): {verdict}")
    lines += ["", "## Hybrid (RRF, k=60) vs dense, paired bootstrap, 95% interval", ""]
    for variant, c in report["hybrid_vs_dense"].items():
        r, m = c["recall@10"], c["mrr"]
        lines.append(
            f"- {variant}: recall@10 {r['delta']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}], "
            f"MRR {m['delta']:+.3f} [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]; queries hit "
            f"only by hybrid {c['hit@10_only_hybrid']}, only by dense "
            f"{c['hit@10_only_dense']}"
        )
    lines += ["", report["conclusion"], ""]
    return "\n".join(lines)


def conclusion(comparison: dict[str, Any]) -> str:
    """Plain words on hybrid vs dense (torch), per metric, from the paired bootstrap intervals."""
    parts = []
    for metric in ("recall@10", "mrr"):
        c = comparison["torch"][metric]
        low, high = c["ci95"]
        if low > 0:
            verdict = "hybrid measurably better"
        elif high < 0:
            verdict = "dense measurably better"
        else:
            verdict = "no measurable difference (interval includes 0)"
        parts.append(f"{metric} {c['delta']:+.3f} [{low:+.3f}, {high:+.3f}]: {verdict}")
    return "Hybrid vs dense (torch): " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    parser.add_argument("--no-registry", action="store_true", help="do not update the registry")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    projects = [load_project(name) for name in PROJECTS]
    vectors, alone, embed_info = embed_all(projects, args.models_dir)
    metrics, pooled = evaluate(projects, vectors, alone)
    queries = {p.name: len(p.duplicates) for p in projects}
    queries["all"] = sum(queries.values())
    comparison: dict[str, Any] = {
        v: paired_bootstrap(pooled[f"dense-{v}"], pooled[f"hybrid-{v}"]) for v in VARIANTS
    }
    report = {
        "dataset": "gitbugs-duplicates: hadoop_bugs.csv + SeaMonkey_bugs.csv, *-combined.csv links",
        "text": f"Summary + '. ' + Description, whitespace collapsed, first {MAX_CHARS} chars",
        "queries": queries,
        "corpus": {p.name: len(p.texts) for p in projects},
        "bm25": "bm25s 0.3.16, lucene, k1=1.5, b=0.75, English stopwords + Snowball stemmer",
        "hybrid": f"RRF over the full rankings, sum 1/({RRF_K} + rank), dense + BM25",
        "embedding": embed_info,
        "metrics": metrics,
        "gate": gate(metrics),
        "hybrid_vs_dense": comparison,
        "conclusion": conclusion(comparison),
    }
    write(report, args.out)
    if not args.no_registry:
        update_registry(args.models_dir, metrics, queries["all"])
    print(markdown(report))


if __name__ == "__main__":
    main()
