"""Raw vector-store speed: upserts/s, index build time, search latency and recall, peak RSS.

    python eval/bench_store.py --n 100000 --queries 1000                  # edge
    python eval/bench_store.py --n 100000 --backend qdrant --queries 50   # qdrant-client local

Vectors are synthetic until the embedding stage is wired in: 2,000 random unit centroids in 384
dimensions, cluster sizes Zipf-like, each point a centroid plus gaussian noise (sigma 0.045 per
dimension, so cosine to its centroid is about 0.75), L2-normalised. Queries come from the same
distribution with another seed. Everything is regenerated chunk by chunk from seeds, so the
process never holds the whole dataset: peak RSS is the store's, plus one chunk.

Points go through the public `VectorStore` API (MentionPoint objects, the real payload layout),
in batches of 256 like the ingest tasks. Recall@10 is measured against exact cosine top-10
computed with numpy over the regenerated chunks. Results are merged into
eval/results/bench_store.json (one entry per backend and size) and bench_store.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback_ai.store import EdgeStore, MentionPoint, SearchFilter, VectorStore

RESULTS = Path(__file__).resolve().parent / "results"
WORKDIR = Path(__file__).resolve().parent / "cache" / "bench_store"
DIM = 384
CENTROIDS = 2_000
NOISE = 0.045
CHUNK = 10_000
BATCH = 256
K = 10
SEED = 20_240_101
WORKSPACE = "bench"
SOURCES = np.array(["support", "nps", "app_review", "sales", "survey"])
SOURCE_P = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 365
# Filtered search: one source and the last quarter (about 0.25 x 0.25 = 6% of the points).
FILTER_SOURCES = ("nps",)
FILTER_FROM_DAY = 273
VOCAB = [f"w{i:03d}" for i in range(600)]
NOTES = [
    "Every search filters on the workspace (the contract), so 'unfiltered' means workspace only; "
    "'filtered' adds source + created_at.",
    "upserts/s: time inside store.upsert (MentionPoint -> payload + BM25 sparse vector -> engine), "
    "indexing excluded; "
    "edge indexes inline every 10k points (index_every) and the steps are reported separately.",
    "Index build wall time depends on the other load of the machine (load avg columns); "
    "cpu seconds are this process's own.",
    "qdrant-client local mode is pure Python (exact search, payload filters evaluated per point); "
    "it stands in for a server in tests, not in production.",
    "Peak RSS: the process's peak up to the end of the searches (before the exact top-10 is "
    "computed); it includes the benchmark's own objects (one 10k-point chunk, the queries).",
]


@dataclass
class Chunk:
    start: int
    vectors: np.ndarray
    sources: np.ndarray
    days: np.ndarray


class Synthetic:
    """The dataset: deterministic, regenerated per chunk of CHUNK points."""

    def __init__(self, seed: int = SEED) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        centroids = rng.standard_normal((CENTROIDS, DIM)).astype(np.float32)
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        weights = 1.0 / np.arange(1, CENTROIDS + 1) ** 0.8
        self.weights = weights / weights.sum()
        self.texts = [" ".join(rng.choice(VOCAB, size=20)) for _ in range(1_000)]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        picks = rng.choice(CENTROIDS, size=n, p=self.weights)
        v = self.centroids[picks] + rng.standard_normal((n, DIM)).astype(np.float32) * NOISE
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def chunk(self, index: int, n: int) -> Chunk:
        rng = np.random.default_rng([self.seed, index])
        return Chunk(
            start=index * CHUNK,
            vectors=self.sample(rng, n),
            sources=rng.choice(SOURCES, size=n, p=SOURCE_P),
            days=rng.uniform(0, DAYS, size=n),
        )

    def chunks(self, total: int) -> Iterator[Chunk]:
        for index in range((total + CHUNK - 1) // CHUNK):
            yield self.chunk(index, min(CHUNK, total - index * CHUNK))

    def queries(self, n: int, stream: int = 0) -> np.ndarray:
        return self.sample(np.random.default_rng([self.seed, 999_999, stream]), n)

    def query_texts(self, n: int) -> list[str]:
        rng = np.random.default_rng([self.seed, 888_888])
        return [" ".join(rng.choice(VOCAB, size=6)) for _ in range(n)]

    def points(self, chunk: Chunk) -> list[MentionPoint]:
        out = []
        for j, vector in enumerate(chunk.vectors):
            i = chunk.start + j
            out.append(
                MentionPoint(
                    id=str(uuid.UUID(int=i + 1)),
                    vector=vector,
                    workspace=WORKSPACE,
                    item_id=f"item-{i}",
                    mention_index=0,
                    text=self.texts[i % len(self.texts)],
                    source=str(chunk.sources[j]),
                    created_at=T0 + timedelta(days=float(chunk.days[j])),
                    account_id=f"acct-{i % 5_000}",
                    segment=("smb", "mid", "enterprise")[i % 3],
                    rating=float(i % 11),
                    rating_scale="nps",
                    metadata={"plan": ("free", "pro", "team")[i % 3]},
                )
            )
        return out


def filtered() -> SearchFilter:
    return SearchFilter(
        source=list(FILTER_SOURCES), created_from=T0 + timedelta(days=FILTER_FROM_DAY)
    )


def exact_topk(data: Synthetic, n: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-K point indices per query, unfiltered and filtered, chunk by chunk."""
    best: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chunk in data.chunks(n):
        scores = queries @ chunk.vectors.T
        mask = np.isin(chunk.sources, FILTER_SOURCES) & (chunk.days >= FILTER_FROM_DAY)
        for name, s in (("all", scores), ("filtered", np.where(mask, scores, -np.inf))):
            idx = np.broadcast_to(np.arange(chunk.start, chunk.start + len(chunk.vectors)), s.shape)
            if name in best:
                s = np.concatenate([best[name][0], s], axis=1)
                idx = np.concatenate([best[name][1], idx], axis=1)
            top = np.argsort(-s, axis=1)[:, :K]
            best[name] = (np.take_along_axis(s, top, 1), np.take_along_axis(idx, top, 1))
    return best["all"][1], best["filtered"][1]


def rss_mb() -> dict[str, float]:
    """Resident memory now (anonymous = heap; file = memory-mapped files) and the peak."""
    fields = {"VmRSS": "rss_mb", "RssAnon": "rss_anon_mb", "RssFile": "rss_file_mb"}
    out: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name = line.split(":")[0]
            if name in fields:
                out[fields[name]] = round(int(line.split()[1]) / 1024, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def dir_mb(path: Path) -> float:
    """Blocks in use (the WAL preallocates sparse 32 MiB files)."""
    used = sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())
    return round(used / 2**20, 1)


def open_store(args: argparse.Namespace, path: Path) -> VectorStore:
    if args.backend == "edge":
        return EdgeStore(
            path,
            DIM,
            index_every=args.index_every or None,
            max_segment_points=args.max_segment_points,
            quantize=args.quantize,
        )
    from feedback_ai.store import QdrantStore  # imported only here: it weighs ~1 s and RSS

    return QdrantStore(":memory:", DIM, collection="bench")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ingest(store: VectorStore, data: Synthetic, n: int) -> dict[str, Any]:
    steps: list[tuple[float, float]] = []  # (wall, cpu) of each indexing run
    if isinstance(store, EdgeStore):  # time each indexing run separately
        real = store.optimize

        def timed() -> bool:
            wall, cpu = time.perf_counter(), cpu_s()
            changed = real()
            steps.append((time.perf_counter() - wall, cpu_s() - cpu))
            return changed

        store.optimize = timed  # type: ignore[method-assign]
    in_upsert = 0.0  # time inside store.upsert, indexing steps included; data generation excluded
    for chunk in data.chunks(n):
        points = data.points(chunk)
        t = time.perf_counter()
        for b in range(0, len(points), BATCH):
            store.upsert(points[b : b + BATCH])
        in_upsert += time.perf_counter() - t
        print(f"  upserted {chunk.start + len(points):,}", file=sys.stderr, flush=True)
    inline = list(steps)
    if isinstance(store, EdgeStore):
        store.optimize()
    final = steps[len(inline) :] or [(0.0, 0.0)]
    inline_wall = sum(w for w, _ in inline)
    return {
        "upserts_per_s": round(n / (in_upsert - inline_wall)),
        "inline_index_steps": len(inline),
        "inline_index_step_max_s": round(max((w for w, _ in inline), default=0.0), 1),
        "inline_index_total_s": round(inline_wall, 1),
        "final_optimize_s": round(final[0][0], 1),
        "index_build_total_s": round(inline_wall + final[0][0], 1),
        "index_build_cpu_s": round(sum(c for _, c in steps), 1),
        "index_steps_wall_s": [round(w, 1) for w, _ in steps],
    }


MODES = ("unfiltered", "filtered", "hybrid")


def timed_searches(
    store: VectorStore, queries: dict[str, np.ndarray], texts: list[str]
) -> dict[str, tuple[dict[str, float], list[list[int]]]]:
    """Latency per mode. The modes take turns query by query, so they share the machine's load,
    and each has its own query vectors, so none finds the pages another just read."""
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    found: dict[str, list[list[int]]] = {mode: [] for mode in MODES}
    for i, text in enumerate(texts):
        for mode in MODES:
            flt = filtered() if mode == "filtered" else None
            t = time.perf_counter()
            hits = store.search(
                WORKSPACE,
                queries[mode][i],
                limit=K,
                filter=flt,
                text=text if mode == "hybrid" else None,
            )
            latencies[mode].append((time.perf_counter() - t) * 1000)
            found[mode].append([uuid.UUID(h.id).int - 1 for h in hits])
    return {mode: (percentiles(latencies[mode]), found[mode]) for mode in MODES}


def percentiles(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t)) / K for f, t in zip(found, truth.tolist(), strict=True)]
    return round(float(np.mean(hits)), 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Synthetic()
    path = WORKDIR / run_key(args)
    result: dict[str, Any] = {"backend": args.backend, "n": args.n, "dim": DIM}
    result["load_avg_at_start"] = round(os.getloadavg()[0], 2)
    if args.search_only:  # re-measure the search on the shard a previous run left
        if not path.exists():
            raise SystemExit(f"no shard at {path}: run once without --search-only")
        store = open_store(args, path)
        result["memory_after_open"] = rss_mb()
    else:
        shutil.rmtree(path, ignore_errors=True)
        store = open_store(args, path)
        result["ingest"] = ingest(store, data, args.n)
        result["memory_after_ingest"] = rss_mb()
    queries = {mode: data.queries(args.queries, stream) for stream, mode in enumerate(MODES)}
    warm_up = data.queries(20, stream=len(MODES))
    for q in warm_up:
        store.search(WORKSPACE, q, limit=K)
    print("  searching", file=sys.stderr, flush=True)
    timed = timed_searches(store, queries, data.query_texts(args.queries))
    result["memory_after_searches"] = rss_mb()  # the peak so far is the store's (truth not yet)
    both = exact_topk(data, args.n, np.vstack([queries["unfiltered"], queries["filtered"]]))
    truth_all, truth_flt = both[0][: args.queries], both[1][args.queries :]
    (unfiltered, found_all), (flt, found_flt) = timed["unfiltered"], timed["filtered"]
    unfiltered["recall_at_10"] = recall(found_all, truth_all)
    flt["recall_at_10"] = recall(found_flt, truth_flt)
    result["search_unfiltered"] = unfiltered
    result["search_filtered"] = flt | {"filter": "source=nps AND created_at >= day 273 (~6%)"}
    result["search_hybrid"] = timed["hybrid"][0] | {"what": "dense + BM25 (6 words), RRF"}
    result["queries"] = args.queries
    if isinstance(store, EdgeStore):
        result["shard"] = store.info()
        store.close()
        result["disk_mb"] = dir_mb(path)
    else:
        store.close()
    result["memory"] = rss_mb()
    result["load_avg_at_end"] = round(os.getloadavg()[0], 2)
    return result


def write(key: str, result: dict[str, Any], results: Path, search_only: bool) -> None:
    results.mkdir(parents=True, exist_ok=True)
    out = results / "bench_store.json"
    doc = json.loads(out.read_text()) if out.exists() else {}
    runs = doc.setdefault("runs", {})
    if search_only:  # the ingest run's figures stay; these are filed as "reopened"
        measured = ("search_", "memory", "load_avg", "total_wall")
        reopened = {f"reopened_{k}": v for k, v in result.items() if k.startswith(measured)}
        result = {**runs.get(key, {}), **reopened}
    runs[key] = result
    doc["vectors"] = (
        f"synthetic: {CENTROIDS} random unit centroids x {DIM} dims, Zipf-like cluster sizes "
        f"(weight 1/rank^0.8), gaussian noise sigma {NOISE}/dim, L2-normalised, seeded; "
        "queries from the same distribution (not in the data). No embedding model."
    )
    doc["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    out.write_text(json.dumps(doc, indent=2) + "\n")
    doc["notes"] = NOTES
    (results / "bench_store.md").write_text(markdown(doc))


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Vector store benchmark",
        "",
        f"Vectors: {doc['vectors']}",
        f"Machine: {doc['machine']}. Reproduce: `python eval/bench_store.py --n N --queries Q`.",
        "",
        "| run | upserts/s | index build s: wall / cpu (max step) | search p50 / p95 ms "
        "| filtered p50 / p95 ms | hybrid p50 / p95 ms | recall@10 (filtered) | peak RSS MB "
        "| disk MB | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in sorted(doc["runs"].items()):
        i, u, f = r["ingest"], r["search_unfiltered"], r["search_filtered"]
        h = r.get("search_hybrid", {"p50_ms": "-", "p95_ms": "-"})
        lines.append(
            f"| {key} | {i['upserts_per_s']:,} | {i['index_build_total_s']} / "
            f"{i['index_build_cpu_s']} ({i['inline_index_step_max_s']}) "
            f"| {u['p50_ms']} / {u['p95_ms']} | {f['p50_ms']} / {f['p95_ms']} "
            f"| {h['p50_ms']} / {h['p95_ms']} "
            f"| {u['recall_at_10']} ({f['recall_at_10']}) "
            f"| {r.get('memory_after_searches', r['memory'])['peak_rss_mb']:,} "
            f"| {r.get('disk_mb', '-')} | {r['load_avg_at_start']}-{r['load_avg_at_end']} |"
        )
    reopened = [(k, r) for k, r in sorted(doc["runs"].items()) if "reopened_search_unfiltered" in r]
    if reopened:
        lines += [
            "",
            "Searches after closing and reopening the shard (`--search-only`: cold page cache):",
            "",
            "| run | search p50 / p95 ms | filtered p50 / p95 ms | hybrid p50 / p95 ms "
            "| RSS after open MB | RSS after searches MB | load avg |",
            "|---|---|---|---|---|---|---|",
        ]
    for key, r in reopened:
        u, f, h = (r[f"reopened_search_{m}"] for m in MODES)
        lines.append(
            f"| {key} | {u['p50_ms']} / {u['p95_ms']} | {f['p50_ms']} / {f['p95_ms']} "
            f"| {h['p50_ms']} / {h['p95_ms']} | {r['reopened_memory_after_open']['rss_mb']} "
            f"| {r.get('reopened_memory_after_searches', r['reopened_memory'])['rss_mb']} "
            f"| {r['reopened_load_avg_at_start']}-{r['reopened_load_avg_at_end']} |"
        )
    lines += ["", "Notes:", ""] + [f"- {note}" for note in doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def run_key(args: argparse.Namespace) -> str:
    key = f"{args.backend}-{args.n}"
    if args.backend == "edge":
        key += "" if args.quantize else "-f32"
        key += f"-every{args.index_every}" if args.index_every != 10_000 else ""
        key += f"-seg{args.max_segment_points}" if args.max_segment_points != 200_000 else ""
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--backend", choices=["edge", "qdrant"], default="edge")
    parser.add_argument("--index-every", type=int, default=10_000, help="edge; 0: index at the end")
    parser.add_argument("--max-segment-points", type=int, default=200_000, help="edge")
    parser.add_argument(
        "--search-only", action="store_true", help="edge: re-measure search on the last shard"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--quantize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="edge: int8 scalar quantisation (the store's default)",
    )
    args = parser.parse_args()
    if args.search_only and args.backend != "edge":
        parser.error("--search-only needs the edge backend (local mode keeps nothing)")
    warnings.filterwarnings("ignore", "Local mode is not recommended", UserWarning)
    started = time.perf_counter()
    result = run(args)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    if args.backend == "edge":
        result["index_every"] = args.index_every
        result["max_segment_points"] = args.max_segment_points
    key = run_key(args)
    write(key, result, args.out, args.search_only)
    print(json.dumps({key: result}, indent=2))


if __name__ == "__main__":
    main()
