"""Theme refits and theme reads at N stored mentions, through the product's own entry points.

    python -m eval.bench_refit --n 100000        (and --n 1000000)

1. Data: ~90k real texts from ../shared/data embedded once (cached), replicated with noise up to
   N (as eval/bench_api.py); one item per mention, written straight into a fresh embedded data
   dir (records DB + edge store; the ingest path is measured by eval/bench_ingest.py), with dates
   over 400 days, 5,000 accounts with an ARR each, NPS ratings. Kept under var/bench_refit_<N>/
   for reruns (`--reuse`).
2. Refit: `feedback-ai themes refit` as a subprocess (the CLI the docs name): wall time, CPU
   time, and the refit's peak RSS (its VmHWM after each stage, as the refit job records it).
3. Reads: `feedback-ai serve` on the data dir; `GET /v1/themes?window=30d` and
   `GET /v1/themes/{id}/trend?interval=week` (52 weeks) over HTTP: p50 / p95.
4. Live assignment: the ingest task body (accept + `FeedbackService.process`) on fresh real
   texts in 256-item batches, in the refitted workspace, with live assignment on and off
   (4 blocks of rounds off, on, on, off; 8,000 items of BANKING77 train texts each way): CPU
   seconds each and the overhead ratio, and the CPU spent inside live assignment itself over
   the rounds without it.
Writes eval/results/bench_refit_<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from eval import hostinfo
from eval.bench_api import load_store, peak_rss_mb, percentiles, wait_ready
from eval.corpus import ROOT, cache_key, embeddings, real_texts, replicate
from feedback_ai.config import Settings, StoreBackend
from feedback_ai.factory import make_embedder

RESULTS = ROOT / "eval" / "results"
WORKSPACE = "default"
PORT = 8767


def build(settings: Settings, n: int) -> dict[str, Any]:
    """Items in the records DB and one mention each in the edge store."""
    from sqlalchemy import insert

    from feedback_ai.records import Records
    from feedback_ai.records.models import Item

    texts = real_texts()
    embedder = make_embedder(settings)
    vectors = replicate(embeddings(texts, cache_key(embedder), embedder.embed), n)
    item_ids = [str(uuid.UUID(int=i)) for i in range(n)]
    rng = np.random.default_rng(1)
    base = datetime.now(UTC) - timedelta(days=400)
    minutes = rng.integers(0, 400 * 24 * 60, n)
    records = Records(settings.resolved_database_url)
    records.ensure_workspace(WORKSPACE)
    start = time.perf_counter()
    with records.engine.begin() as conn:
        for lo in range(0, n, 50_000):
            conn.execute(
                insert(Item),
                [
                    _item(i, item_ids[i], texts, base, minutes)
                    for i in range(lo, min(lo + 50_000, n))
                ],
            )
    db_s = time.perf_counter() - start
    store_s = load_store(
        settings,
        vectors,
        texts,
        item_ids=item_ids,
        created=[base + timedelta(minutes=int(m)) for m in minutes],
    )
    return {"records_s": round(db_s, 1), "store_s": round(store_s, 1)}


def _item(i: int, item_id: str, texts: list[str], base: datetime, minutes: np.ndarray) -> dict:
    account = i % 5000
    return {
        "id": item_id,
        "workspace_id": WORKSPACE,
        "source": "bench",
        "external_id": None,
        "text": texts[i % len(texts)],
        "created_at": base + timedelta(minutes=int(minutes[i])),
        "account_id": f"acct-{account}",
        "revenue": float(1000 * (1 + account % 50)),
        "rating": float(i % 11),
        "rating_scale": "nps",
        "metadata": {},
        "status": "stored",
        "mention_count": 1,
        "pii": {},
    }


def refit(settings: Settings) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "feedback_ai.cli", "themes", "refit"]
    cmd += ["--data-dir", str(settings.data_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = last_refit(settings)
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
        # the refit's own VmHWM: the children's ru_maxrss would report this process's peak,
        # which a child inherits at fork and keeps across exec
        "peak_rss_mb": max(result["peak_rss_mb"].values()),
        "peak_rss_mb_after_stage": result["peak_rss_mb"],
        "stages_s": result["seconds"],
        "output": {k: v for k, v in result.items() if k not in ("seconds", "peak_rss_mb")},
    }


def last_refit(settings: Settings) -> dict[str, Any]:
    """The result the last refit job recorded."""
    from sqlalchemy import select

    from feedback_ai.records import Records
    from feedback_ai.records.theme_models import JobRun

    records = Records(settings.resolved_database_url)
    with records.session() as s:
        q = select(JobRun).where(JobRun.kind == "refit").order_by(JobRun.created_at.desc())
        run = s.scalars(q.limit(1)).one()
    records.engine.dispose()
    return dict(run.result)


def reads(settings: Settings, requests: int) -> dict[str, Any]:
    key = "fai_bench_" + uuid.uuid4().hex
    env = dict(os.environ, FEEDBACK_AI_BOOTSTRAP_KEY=key, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "feedback_ai.cli", "serve", "--data-dir", str(settings.data_dir)]
    log = (settings.data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [*cmd, "--port", str(PORT)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{PORT}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ) as c:
            wait_ready(c, proc)
            listing = c.get("/v1/themes", params={"window": "3650d", "limit": 200}).json()
            theme_ids = [t["id"] for t in listing["themes"]]
            rank, trend = [], []
            for i in range(requests):
                rank.append(_timed(c, "/v1/themes", {"window": "30d"}))
                trend.append(
                    _timed(
                        c, f"/v1/themes/{theme_ids[i % len(theme_ids)]}/trend", {"interval": "week"}
                    )
                )
        return {
            "themes": listing["total"],
            "ranking_30d": percentiles(rank[5:]),
            "trend_52w": percentiles(trend[5:]),
            "server_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def _timed(client: httpx.Client, path: str, params: dict[str, str]) -> float:
    start = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = (time.perf_counter() - start) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
    return elapsed


class _TimedThemes:
    """The theme service, with the CPU time of its `assign` calls (the thread's own) counted."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.cpu_s = inner, 0.0

    def assign(self, *args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return self.inner.assign(*args, **kwargs)
        finally:
            self.cpu_s += time.thread_time() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def live_overhead(settings: Settings, per_round: int = 1_000, n_blocks: int = 4) -> dict[str, Any]:
    """The ingest task body (accept + process) in the refitted workspace, with live assignment
    on and off, on fresh items of real texts each round, in blocks of (off, on, on, off) (so a
    drift in the machine's speed weighs on both sides alike). Same process, same workspace,
    same store: the only difference is `service.themes`. Two figures: the difference in the
    process's CPU seconds (everything live assignment costs, noisy: a few points run to run),
    and the CPU seconds spent inside `ThemeService.assign` itself over the CPU seconds of the
    rounds without it (direct, steadier; misses indirect costs such as cache misses)."""
    from eval.labelled import load
    from feedback_ai.factory import build_service

    texts = load("banking77", "train").texts  # 10,003 real queries
    service = build_service(settings)
    service.warm_up()
    # Index any tail earlier runs left first: otherwise the indexing step it is due (seconds of
    # CPU at 1M) lands in whichever round comes first and swamps the comparison.
    getattr(service.store, "optimize", lambda: None)()
    # ... and hold the engine's indexing run (due every 10,000 new points) off until the end:
    # it costs the same with or without themes, but seconds at once, in one round.
    index_every = getattr(service.store, "index_every", None)
    if index_every is not None:
        service.store.index_every = None  # type: ignore[attr-defined]
    themes = service.themes
    timed = _TimedThemes(themes) if themes else None

    def process(job_id: str, ids: list[str]) -> None:  # in-process dispatch, as embedded mode
        service.process(job_id, ids)

    cpu = {"off": 0.0, "on": 0.0}
    blocks: list[dict[str, float]] = []
    pool_before = themes.db.pool_size(WORKSPACE) if themes else 0
    run = uuid.uuid4().hex[:8]  # a fresh source per run: the items are new even with --reuse
    for i, mode in enumerate(("off", "on", "on", "off") * n_blocks):
        if i % 4 == 0:
            blocks.append({"off": 0.0, "on": 0.0})
        lo = i * per_round % (len(texts) - per_round)  # texts come round again: new source
        items = [{"text": t, "source": f"live-{run}-{i}"} for t in texts[lo : lo + per_round]]
        service.themes = timed if mode == "on" else None  # type: ignore[assignment]
        start = time.process_time()
        for j in range(0, len(items), 256):
            service.submit(WORKSPACE, items[j : j + 256], process)
        spent = time.process_time() - start
        cpu[mode] += spent
        blocks[-1][mode] += spent
    service.themes = themes
    pool_after = themes.db.pool_size(WORKSPACE) if themes else 0
    getattr(service.store, "optimize", lambda: None)()
    service.close()
    return {
        "texts_per_mode": 2 * n_blocks * per_round,
        "cpu_s_without_themes": round(cpu["off"], 2),
        "cpu_s_with_themes": round(cpu["on"], 2),
        "overhead": round(cpu["on"] / cpu["off"] - 1, 4),
        "overhead_per_block": [round(b["on"] / b["off"] - 1, 4) for b in blocks],
        "assign_cpu_s": round(timed.cpu_s, 3) if timed else None,
        "overhead_direct": round(timed.cpu_s / cpu["off"], 4) if timed else None,
        "pooled_while_on": pool_after - pool_before,
        "method": f"same refitted workspace; {n_blocks} blocks of rounds (off, on, on, off) "
        f"of {per_round:,} texts; "
        "accept + process CPU seconds (the store's indexing run held off until after the "
        "rounds); direct: CPU inside ThemeService.assign",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an existing data dir")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--live-only", action="store_true", help="with --reuse: print, write nothing"
    )
    parser.add_argument(
        "--skip-refit", action="store_true", help="with --reuse: measure reads on the last refit"
    )
    args = parser.parse_args()
    data_dir = ROOT / "var" / f"bench_refit_{args.n}"
    settings = Settings(data_dir=data_dir, store_backend=StoreBackend.edge)
    if args.live_only:  # replaces the live-assignment figures of the last full run's file
        live = live_overhead(settings)
        print(json.dumps(live, indent=1))
        out_file = RESULTS / f"bench_refit_{args.n}.json"
        if out_file.exists():
            merged = {**json.loads(out_file.read_text()), "live_assignment": live}
            out_file.write_text(json.dumps(merged, indent=2) + "\n")
        return
    result: dict[str, Any] = {"n": args.n, "load_avg_start": round(os.getloadavg()[0], 2)}
    if not (args.reuse and (data_dir / "vectors").exists()):
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        result["build"] = build(settings, args.n)
    out_file = RESULTS / f"bench_refit_{args.n}.json"
    if args.skip_refit and out_file.exists():  # keep the refit figures of the run that made it
        result["refit"] = {**json.loads(out_file.read_text()).get("refit", {}), "earlier": True}
    else:
        result["refit"] = refit(settings)
        print(json.dumps(result["refit"], indent=1), flush=True)
    result["reads"] = reads(settings, args.requests)
    print(json.dumps(result["reads"], indent=1), flush=True)
    if not args.skip_live:
        result["live_assignment"] = live_overhead(settings)
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    result["machine"] = f"{os.cpu_count()} cores"
    result["cpu"] = hostinfo.cpu()
    result["vectors"] = "real texts embedded once (cached), replicated with Gaussian noise to N"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
