"""`POST /v1/match` latency through the HTTP API at N stored feedback items and R roadmap items.

    python -m eval.bench_match --n 100000 --roadmap 500        [--requests 200] [--reuse]

Target (issue 4): p50 ≤ 30 ms at 100k feedback items and 500 roadmap items, warm.

1. Data: the workspace of eval/bench_refit.py: ~90k real texts from ../shared/data embedded once
   (cached), replicated with noise up to N, one item per mention written straight into a fresh
   embedded data dir (`bench_refit.build`), then `feedback-ai themes refit` (`bench_refit.refit`).
   Kept under var/bench_match_<N>/ for reruns (`--reuse`: no build, no refit). When
   var/bench_refit_<N>/ exists and has been refitted, it is copied instead (saves the build and
   the refit, ~10 min at 100k); it then also holds bench_refit's live-assignment items, so the
   item count reported is the one in the records DB. Don't copy it while bench_refit runs.
2. Roadmap: `feedback-ai serve` on the data dir; R items upserted through `POST /v1/roadmap`
   (keys RM-0001...; stale RM- keys of an earlier run deleted): the intent names of BANKING77
   (77) and CLINC150 (150) as words, then real short texts from `eval.corpus.real_texts()`.
3. Cold call: the first `POST /v1/match` fits and caches the workspace's two matchers (themes:
   live centroids; roadmap: self-training on up to `match_pool` stored mentions): timed apart.
   It answers from the roadmap fit's first stage (`partial: true`); calls every 0.5 s until one
   is not partial time the whole fit, lexical view included (`cold_fit_complete_s`).
4. Warm: 5 warm-up calls, then `--requests` timed calls, `{"text": ..., "k": 3}`: p50 / p95.
5. After an edit: one roadmap item is added, which makes the roadmap matcher refit (in the
   background); the next call is timed (it waits up to `match_fit_wait_s`, then answers from the
   last matcher, `stale: true`), then calls every 0.5 s: the time until one is no longer stale
   (`current_after_s`: the refit's first stage has the edit) and until one is neither stale nor
   partial (`fresh_after_s`: the whole refit).
   Queries: real app reviews (Maalej et al., ../shared/data/maalej-app-reviews) that are not in
   `real_texts()`, so none is a stored text (CLINC150 test texts are all stored from N ≈ 37k on).
   Server peak RSS from /proc (VmHWM).
Writes eval/results/bench_match_<N>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from eval import hostinfo
from eval.bench_api import peak_rss_mb, percentiles, wait_ready
from eval.bench_refit import build, refit
from eval.corpus import ROOT, SHARED, real_texts
from eval.labelled import intent_names
from feedback_ai.config import Settings, StoreBackend
from feedback_ai.link.matcher import label_text
from feedback_ai.link.roadmap import MAX_BATCH

RESULTS = ROOT / "eval" / "results"
WORKSPACE = "default"
FLAGS = ("stale", "partial")  # an answer with neither comes from the whole, current fit
PORT = 8769  # bench_api uses 8765, bench_refit 8767
STATUSES = ("idea", "planned", "in_progress")
WARM_UP = 5
ROADMAP_NOTE = (
    "upserted through POST /v1/roadmap: titles are the intent names of BANKING77 (77) and "
    "CLINC150 (150) as words, then real short texts from eval.corpus.real_texts() (seeded "
    "sample, 20-300 chars; over 80 chars: a cut title and the full text as description)"
)


# --- data dir
def prepare(n: int, reuse: bool) -> tuple[Settings, dict[str, Any]]:
    """The data dir: kept (`--reuse`), copied from a refitted bench_refit dir, or built."""
    data_dir = ROOT / "var" / f"bench_match_{n}"
    settings = Settings(data_dir=data_dir, store_backend=StoreBackend.edge)
    if reuse and (data_dir / "vectors").exists():
        return settings, {"how": f"reused {data_dir.relative_to(ROOT)} (built by an earlier run)"}
    shutil.rmtree(data_dir, ignore_errors=True)
    source = ROOT / "var" / f"bench_refit_{n}"
    if refitted(source):
        start = time.perf_counter()
        shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("server.log"))
        copy_s = round(time.perf_counter() - start, 1)
        return settings, {"how": f"copied from {source.relative_to(ROOT)}", "copy_s": copy_s}
    data_dir.mkdir(parents=True)
    built = build(settings, n)
    how = "bench_refit.build + bench_refit.refit"
    return settings, {"how": how, "build": built, "refit": refit(settings)}


def _db(data_dir: Path) -> sqlite3.Connection:
    uri = f"file:{data_dir / 'feedback_ai.sqlite3'}?mode=ro"
    return sqlite3.connect(uri, uri=True)


def refitted(data_dir: Path) -> bool:
    """A data dir with vectors and a taxonomy that `themes refit` has written (read-only look)."""
    if not (data_dir / "vectors").exists() or not (data_dir / "feedback_ai.sqlite3").exists():
        return False
    try:
        with _db(data_dir) as conn:
            row = conn.execute(
                "SELECT version FROM taxonomies WHERE workspace_id = ?", (WORKSPACE,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0] > 0)


def counts(data_dir: Path) -> dict[str, int]:
    """Items in the workspace and the live themes the theme matcher is fitted on."""
    with _db(data_dir) as conn:
        items = conn.execute("SELECT count(*) FROM items WHERE workspace_id = ?", (WORKSPACE,))
        n_items = items.fetchone()[0]
        themes = conn.execute(
            "SELECT count(*) FROM themes WHERE workspace_id = ? AND status IN (?, ?)",
            (WORKSPACE, "active", "emerging"),
        )
        return {"items": n_items, "themes": themes.fetchone()[0]}


# --- inputs
def roadmap_items(n: int) -> list[dict[str, Any]]:
    """BANKING77 and CLINC150 intent names as titles, then real short texts (seeded sample)."""
    names = [("banking77", x) for x in intent_names("banking77")]
    names += [("clinc150", x) for x in intent_names("clinc150")]
    rows = [{"title": label_text(x), "tags": [tag]} for tag, x in names]
    texts = [t for t in real_texts() if 20 <= len(t) <= 300]
    rng = np.random.default_rng(0)
    picked = rng.choice(len(texts), max(0, n - len(rows)), replace=False)
    rows += [{**_title(texts[i]), "tags": ["corpus"]} for i in sorted(picked)]
    return [
        {"key": f"RM-{i + 1:04d}", "status": STATUSES[i % len(STATUSES)], **row}
        for i, row in enumerate(rows[:n])
    ]


def _title(text: str, limit: int = 80) -> dict[str, str]:
    """A short text is the title; a longer one gives a title (cut at a word) and the description."""
    if len(text) <= limit:
        return {"title": text, "description": ""}
    return {"title": text[:limit].rsplit(" ", 1)[0] + "...", "description": text}


def queries(n: int) -> list[str]:
    """Real app-review comments (Maalej et al.; a seeded shuffle), none among the stored texts."""
    stored = set(real_texts())
    with (SHARED / "maalej-app-reviews" / "maalej_reviews.csv").open() as fh:
        comments = [" ".join(row["comment"].split()) for row in csv.DictReader(fh)]
    fresh = [c for c in dict.fromkeys(comments) if c and c not in stored]
    if len(fresh) < n:
        raise ValueError(f"{n} queries asked for, {len(fresh)} available")
    order = np.random.default_rng(0).permutation(len(fresh))  # the file is sorted by label
    return [fresh[i] for i in order[:n]]


# --- the server
def serve(settings: Settings, key: str) -> subprocess.Popen[bytes]:
    """`feedback-ai serve` on its own port (so `wait_ready` cannot see another bench's server)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            raise RuntimeError(f"port {PORT} is in use: another server is running")
    env = dict(os.environ, FEEDBACK_AI_BOOTSTRAP_KEY=key, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "feedback_ai.cli", "serve", "--data-dir", str(settings.data_dir)]
    log = (settings.data_dir / "server.log").open("wb")
    return subprocess.Popen(
        [*cmd, "--port", str(PORT)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _ok(r: httpx.Response) -> Any:
    if r.status_code not in (200, 204):
        raise RuntimeError(f"{r.request.method} {r.url.path}: {r.status_code} {r.text[:500]}")
    return r.json() if r.status_code == 200 else None


def upsert_roadmap(client: httpx.Client, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Upsert in batches of at most MAX_BATCH; delete RM- items an earlier run left beyond R."""
    start = time.perf_counter()
    created = 0
    for lo in range(0, len(items), MAX_BATCH):
        body = {"items": items[lo : lo + MAX_BATCH]}
        created += len(_ok(client.post("/v1/roadmap", json=body))["created"])
    wanted = {i["key"] for i in items}
    listed = _ok(client.get("/v1/roadmap", params={"sort": "key"}))["items"]
    stale = [i["key"] for i in listed if i["key"].startswith("RM-") and i["key"] not in wanted]
    for key in stale:
        _ok(client.delete(f"/v1/roadmap/{key}"))
    total = len(listed) - len(stale)
    wall = round(time.perf_counter() - start, 1)
    return {"items": total, "created": created, "deleted_stale": len(stale), "upsert_s": wall}


def _match(client: httpx.Client, text: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    r = client.post("/v1/match", json={"text": text, "k": 3})
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, _ok(r)


def until_fresh(
    client: httpx.Client, text: str, body: dict[str, Any], flags: tuple[str, ...] = FLAGS
) -> tuple[float, int, dict[str, Any]]:
    """Match `text` every 0.5 s while the last answer (`body`) has any of `flags` set:
    (seconds, calls, the last answer)."""
    start, calls = time.perf_counter(), 0
    while any(body.get(flag) for flag in flags):
        calls += 1
        time.sleep(0.5)
        _, body = _match(client, text)
    return time.perf_counter() - start, calls, body


def measure(client: httpx.Client, qs: list[str]) -> dict[str, Any]:
    """The cold call (its answer comes from the fits' first stage), calls until the fits have
    ended (neither stale nor partial), WARM_UP calls, then one timed call per query."""
    cold_ms, first = _match(client, qs[0])
    complete_s, _, _ = until_fresh(client, qs[0], first)
    for q in qs[1 : 1 + WARM_UP]:
        _match(client, q)
    ms, decisions, with_roadmap = [], Counter[str](), 0
    for q in qs[1 + WARM_UP :]:
        elapsed, body = _match(client, q)
        ms.append(elapsed)
        decisions[body["decision"]] += 1
        with_roadmap += bool(body["roadmap"])
    return {
        "after_edit": after_edit(client, qs[0]),
        "cold_first_call_s": round(cold_ms / 1000, 2),
        "cold_first_call_stale": bool(first.get("stale")),
        "cold_first_call_partial": bool(first.get("partial")),
        "cold_fit_complete_s": round(cold_ms / 1000 + complete_s, 2),
        "cold_candidates": {k: len(first[k]) for k in ("themes", "roadmap", "feedback")},
        "requests": len(ms),
        **{k: round(v, 2) for k, v in percentiles(ms).items()},
        "max_ms": round(max(ms), 2),
        "decisions": dict(decisions),
        "share_with_roadmap_candidates": round(with_roadmap / len(ms), 4),
    }


def after_edit(client: httpx.Client, text: str) -> dict[str, Any]:
    """Add a roadmap item; time the next match, how long until an answer has the edit (not
    stale: the refit's first stage) and until the whole refit is in (not partial either)."""
    item = {"key": "RM-EDIT", "title": "Edited: " + text[:60], "status": "idea"}
    _ok(client.post("/v1/roadmap", json={"items": [item]}))
    first_ms, body = _match(client, text)
    first_stale = bool(body.get("stale"))
    current_s, stale_calls, body = until_fresh(client, text, body, ("stale",))
    rest_s, partial_calls, _ = until_fresh(client, text, body)
    _ok(client.delete("/v1/roadmap/RM-EDIT"))
    return {
        "first_call_ms": round(first_ms, 1),
        "first_call_stale": first_stale,
        "current_after_s": round(first_ms / 1000 + current_s, 2),
        "fresh_after_s": round(first_ms / 1000 + current_s + rest_s, 2),
        "stale_calls": stale_calls,
        "partial_calls": partial_calls,
    }


def run(settings: Settings, items: list[dict[str, Any]], qs: list[str]) -> dict[str, Any]:
    key = "fai_bench_" + uuid.uuid4().hex
    proc = serve(settings, key)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers=headers, timeout=1800) as c:
            wait_ready(c, proc)
            roadmap = upsert_roadmap(c, items)
            print(json.dumps(roadmap), flush=True)
            match = measure(c, qs)
        return {"roadmap": roadmap, "match": match, "server_peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(60)


def report(
    args: argparse.Namespace, settings: Settings, measured: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """The result file: figures first, then how they were made (`extra`: data, load at start)."""
    roadmap = measured["roadmap"]
    return {
        "n": args.n,
        **counts(settings.data_dir),
        "roadmap_items": {"count": roadmap.pop("items"), **roadmap, "note": ROADMAP_NOTE},
        "match": measured["match"],
        "server_peak_rss_mb": round(measured["server_peak_rss_mb"], 1),
        "load_avg_start": extra["load_avg_start"],
        "load_avg_end": round(os.getloadavg()[0], 2),
        "machine": f"{os.cpu_count()} cores",
        "cpu": hostinfo.cpu(),
        "vectors": "real texts embedded once (cached), replicated with Gaussian noise to N",
        "queries": "Maalej et al. app-review comments not in eval.corpus.real_texts(), k=3",
        "data": extra["data"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--roadmap", type=int, default=500)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an existing data dir")
    args = parser.parse_args()
    load_start = round(os.getloadavg()[0], 2)
    settings, data = prepare(args.n, args.reuse)
    items, qs = roadmap_items(args.roadmap), queries(1 + WARM_UP + args.requests)
    measured = run(settings, items, qs)
    result = report(args, settings, measured, {"load_avg_start": load_start, "data": data})
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_file = RESULTS / f"bench_match_{args.n}.json"
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
