"""Search latency through the HTTP API on the embedded default, at N stored mentions.

    python -m eval.bench_api --n 100000 [--queries 500]

1. Vectors: ~90k real texts from ../shared/data embedded once (cached under eval/cache/), then
   replicated with Gaussian noise (cosine ≈ 0.96 to the source) up to N.
2. They are written straight into the embedded store of a fresh data dir (the ingest path is
   measured by eval/bench_ingest.py), with realistic payloads (source, dates, accounts).
3. `feedback-ai serve` runs on that data dir as a subprocess; real queries (CLINC150 test texts)
   go through POST /v1/search over HTTP: p50/p95. Server peak RSS from /proc (VmHWM).
4. Same run, same queries, in this process: query embedding + raw store search (the floor the API
   is compared with: target API p50 ≤ 2x that).
Writes eval/results/bench_api_<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from eval import hostinfo
from eval.corpus import ROOT, SHARED, cache_key, embeddings, real_texts, replicate
from feedback_ai import ids
from feedback_ai.config import Settings, StoreBackend
from feedback_ai.factory import make_embedder, make_store
from feedback_ai.store._base import MentionPoint
from feedback_ai.store.edge import EdgeStore

RESULTS = ROOT / "eval" / "results"
SOURCES = ("zendesk", "intercom", "nps", "app_store", "csv")


def queries(n: int) -> list[str]:
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    return [text for text, _ in data["test"]][:n]


def load_store(
    settings: Settings,
    vectors: np.ndarray,
    texts: list[str],
    item_ids: list[str] | None = None,
    created: list[datetime] | None = None,
) -> float:
    """Bulk load: indexing deferred to one optimize() at the end (each segment's graph is built
    once instead of grown in 10k steps); searches after it see the same index either way.
    `item_ids` / `created`: the items' ids and dates, when records exist for them."""
    settings.vectors_dir.mkdir(parents=True, exist_ok=True)
    store = EdgeStore(settings.vectors_dir, vectors.shape[1], index_every=None)
    start, base = time.perf_counter(), datetime(2025, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(1)
    batch = 5000
    for lo in range(0, len(vectors), batch):
        points = []
        for i in range(lo, min(lo + batch, len(vectors))):
            item = item_ids[i] if item_ids else str(uuid.UUID(int=i))
            points.append(
                MentionPoint(
                    id=ids.mention_id(item, 0) if item_ids else item,
                    vector=vectors[i],
                    workspace="default",
                    item_id=item,
                    mention_index=0,
                    text=texts[i % len(texts)],
                    source=SOURCES[i % len(SOURCES)],
                    created_at=created[i]
                    if created
                    else base + timedelta(minutes=int(rng.integers(0, 600_000))),
                    account_id=f"acct-{i % 5000}",
                )
            )
        store.upsert(points)
        print(f"\rloaded {min(lo + batch, len(vectors)):,}/{len(vectors):,}", end="", flush=True)
    print()
    optimize = getattr(store, "optimize", None)
    if optimize:
        optimize()
    store.flush()
    store.close()
    return time.perf_counter() - start


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def serve(settings: Settings, key: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FEEDBACK_AI_BOOTSTRAP_KEY=key, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "feedback_ai.cli", "serve", "--data-dir", str(settings.data_dir)]
    cmd += ["--port", "8765"]
    log = (settings.data_dir / "server.log").open("wb")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(
    client: httpx.Client, proc: subprocess.Popen[bytes] | None = None, timeout: float = 600
) -> None:
    """Until /readyz answers 200. Fails if `proc` (the server we started) exits, or if the server
    answering does not know the client's key: the run's fresh bootstrap key, so a 401 means
    another server (a stale one from an earlier run) holds the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}; see its log")
        try:
            if client.get("/readyz").status_code == 200:
                if client.get(f"/v1/jobs/{uuid.UUID(int=0)}").status_code == 401:
                    raise RuntimeError(
                        f"{client.base_url} is served by another process: it does not know "
                        "this run's key (stop the stale server)"
                    )
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api_latency(settings: Settings, qs: list[str]) -> dict[str, float]:
    key = "fai_bench_" + uuid.uuid4().hex
    proc = serve(settings, key)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url="http://127.0.0.1:8765", headers=headers, timeout=30) as c:
            wait_ready(c, proc)
            for q in qs[:20]:  # warm-up
                c.post("/v1/search", json={"query": q, "k": 10}).raise_for_status()
            ms = []
            for q in qs:
                t = time.perf_counter()
                r = c.post("/v1/search", json={"query": q, "k": 10})
                ms.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            filtered = []
            for q in qs[:200]:
                body = {"query": q, "k": 10, "filters": {"source": ["zendesk", "nps"],
                        "created_from": "2025-06-01T00:00:00Z"}}  # fmt: skip
                t = time.perf_counter()
                c.post("/v1/search", json=body).raise_for_status()
                filtered.append((time.perf_counter() - t) * 1000)
        out = {**percentiles(ms)}
        out.update({f"filtered_{k}": v for k, v in percentiles(filtered).items()})
        out["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def raw_latency(settings: Settings, qs: list[str], dim: int) -> dict[str, float]:
    embedder = make_embedder(settings)
    store = make_store(settings, dim)
    for q in qs[:20]:
        store.search("default", embedder.embed_query(q), 50)
    embed_ms, search_ms, total = [], [], []
    for q in qs:
        t0 = time.perf_counter()
        v = embedder.embed_query(q)
        t1 = time.perf_counter()
        store.search("default", v, 50)  # the API over-fetches 5 x k mentions
        t2 = time.perf_counter()
        embed_ms.append((t1 - t0) * 1000)
        search_ms.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
    store.close()
    return {
        "embed_p50_ms": float(np.percentile(embed_ms, 50)),
        "store_search_p50_ms": float(np.percentile(search_ms, 50)),
        "store_search_p95_ms": float(np.percentile(search_ms, 95)),
        **percentiles(total),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench_api")
    args = ap.parse_args()

    load_start = os.getloadavg()[0]
    data_dir = args.data_dir / str(args.n)
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, store_backend=StoreBackend.edge)
    embedder = make_embedder(settings)
    texts = real_texts()
    real = embeddings(texts, cache_key(embedder), embedder.embed)
    vectors = replicate(real, args.n, noise=0.3)
    print(f"{len(real):,} real texts embedded; {args.n - min(args.n, len(real)):,} noisy copies")
    load_s = load_store(settings, vectors, texts)
    qs = queries(args.queries)
    raw = raw_latency(settings, qs, vectors.shape[1])
    api = api_latency(settings, qs)
    result = {
        "n_mentions": args.n,
        "real_texts": len(real),
        "vectors": "real texts embedded once (cached); the rest noisy copies (cos≈0.96)",
        "embedder": embedder.name,
        "queries": len(qs),
        "load_and_index_s": round(load_s, 1),
        "api": api,
        "embed_plus_raw_search": raw,
        "api_p50_over_raw_p50": api["p50_ms"] / raw["p50_ms"],
        "machine": f"{os.cpu_count()} cores",
        "cpu": hostinfo.cpu(),
        "load_avg_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_api_{args.n}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
