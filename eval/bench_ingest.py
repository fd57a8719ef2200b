"""End-to-end ingest throughput: HTTP API → Redis → Celery worker → store, against raw embedding.

    python -m eval.bench_ingest --n 5000

Same run, same texts (BANKING77 + CLINC150 queries, real support-style requests):
1. raw: the configured embedder's `embed()` over the texts, in this process (texts/s);
2. end to end: `feedback-ai serve` in distributed mode and one `feedback-ai worker` (Celery over
   the local Redis), items POSTed in batches of 1,000; clock from the first POST until every job
   reports no pending item. The worker redacts, splits, embeds and writes the embedded Qdrant
   engine; the records DB is SQLite.
Ratio = end-to-end items/s ÷ raw texts/s (target ≥ 0.7). Writes eval/results/bench_ingest.json.

The API process gets an in-memory qdrant-client store it never touches while ingesting: no Qdrant
server can run on this machine, and the embedded engine has one writer (the worker).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from eval.bench_api import peak_rss_mb, wait_ready
from eval.corpus import ROOT, SHARED
from feedback_ai.config import Settings
from feedback_ai.factory import make_embedder

BROKER = "redis://127.0.0.1:6379/14"


def texts(n: int) -> list[str]:
    out: list[str] = []
    with (SHARED / "banking77" / "train.csv").open() as fh:
        out += [row["text"] for row in csv.DictReader(fh)]
    clinc = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    out += [text for text, _ in clinc["train"]]
    return list(dict.fromkeys(out))[:n]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "feedback_ai.cli", *args]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    data_dir = ROOT / "var" / "bench_ingest"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    docs = texts(args.n)

    embedder = make_embedder(Settings())
    embedder.embed(docs[:200])  # warm-up
    t = time.perf_counter()
    embedder.embed(docs)
    raw_rate = len(docs) / (time.perf_counter() - t)
    del embedder
    print(f"raw embedding: {raw_rate:.0f} texts/s ({len(docs)} texts)")

    redis.Redis.from_url(BROKER).flushdb()
    key = "fai_bench_" + uuid.uuid4().hex
    common = dict(
        os.environ, FEEDBACK_AI_MODE="distributed", FEEDBACK_AI_DATA_DIR=str(data_dir),
        FEEDBACK_AI_BROKER_URL=BROKER, FEEDBACK_AI_BOOTSTRAP_KEY=key, HF_HUB_OFFLINE="1",
    )  # fmt: skip
    api_env = dict(common, FEEDBACK_AI_STORE_BACKEND="qdrant", FEEDBACK_AI_QDRANT_URL=":memory:")
    worker_env = dict(common, FEEDBACK_AI_STORE_BACKEND="edge")
    log = data_dir / "processes.log"
    api = start(["serve", "--port", "8766"], api_env, log)
    worker = start(["worker"], worker_env, log)
    try:
        with httpx.Client(
            base_url="http://127.0.0.1:8766", headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as c:
            wait_ready(c)
            time.sleep(15)  # let the worker load its model before the clock starts
            t = time.perf_counter()
            jobs = []
            for lo in range(0, len(docs), 1000):
                items = [{"text": x, "source": "bench"} for x in docs[lo : lo + 1000]]
                r = c.post("/v1/feedback", json={"items": items})
                r.raise_for_status()
                jobs.append(r.json()["job_id"])
            stored = 0
            while True:
                states = [c.get(f"/v1/jobs/{j}").json() for j in jobs]
                if all(s["counts"]["pending"] == 0 for s in states):
                    stored = sum(s["counts"]["stored"] for s in states)
                    break
                time.sleep(0.25)
            e2e_s = time.perf_counter() - t
        worker_rss = peak_rss_mb(worker.pid)
    finally:
        stop(worker)
        stop(api)
    e2e_rate = stored / e2e_s
    result = {
        "n_items": len(docs),
        "stored": stored,
        "raw_embed_texts_per_s": round(raw_rate, 1),
        "e2e_items_per_s": round(e2e_rate, 1),
        "e2e_over_raw": round(e2e_rate / raw_rate, 3),
        "e2e_seconds": round(e2e_s, 1),
        "worker_peak_rss_mb_main_process": round(worker_rss, 1),
        "path": "HTTP API (distributed) -> Redis -> 1 Celery worker -> embedded Qdrant engine",
        "machine": f"{os.cpu_count()} cores",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = ROOT / "eval" / "results" / "bench_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
