"""A real Celery worker process over the real Redis broker, with the real model and spaCy.

API (distributed mode) → Redis → `feedback-ai worker` → embedded Qdrant engine on disk. Then a
worker is SIGKILLed mid-job and a second one finishes it: nothing accepted is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from feedback_ai.config import Mode, Settings, StoreBackend
from feedback_ai.factory import build_service
from feedback_ai.schemas import SearchRequest
from tests.fakes import HashEmbedder, PassthroughNLP
from workers.celery_app import celery_app
from workers.dispatch import CeleryDispatcher

pytestmark = [pytest.mark.slow, pytest.mark.redis]
BROKER = os.environ["FEEDBACK_AI_BROKER_URL"]  # a test database, set in tests/conftest.py
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Redis on localhost")
    assert celery_app.conf.broker_url == BROKER
    client.flushdb()
    yield BROKER
    client.flushdb()


def _env(data_dir: Path, broker: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FEEDBACK_AI_MODE="distributed",
        FEEDBACK_AI_DATA_DIR=str(data_dir),
        FEEDBACK_AI_STORE_BACKEND="edge",
        FEEDBACK_AI_BROKER_URL=broker,
        FEEDBACK_AI_BROKER_VISIBILITY_TIMEOUT_S="5",
        FEEDBACK_AI_TASK_BATCH_SIZE="16",
        HF_HUB_OFFLINE="1",
    )
    env.update({f"FEEDBACK_AI_{k.upper()}": v for k, v in extra.items()})
    return env


def _start_worker(
    data_dir: Path, broker: str, log: Path, *options: str, **settings: str
) -> subprocess.Popen[bytes]:
    """`feedback-ai worker` in distributed mode; `settings` are FEEDBACK_AI_* overrides."""
    cmd = [sys.executable, "-m", "feedback_ai.cli", "worker", "--loglevel", "INFO", *options]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(data_dir, broker, **settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)


def _wait_job(
    client: TestClient,
    job_id: str,
    until: Any,
    timeout: float = 240,
    poll: float = 0.5,
    wait: float = 0,
) -> dict:
    """Re-read the job until `until(job)`; `wait` > 0 long-polls (the API holds each request
    until the job finishes or `wait` s pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": wait}).json()
        if until(job):
            return job
        time.sleep(poll)
    raise AssertionError(f"job did not get there in {timeout}s: {job}")


def _api_service(data_dir: Path, broker: str) -> Any:
    """The API side's service: distributed mode; an in-memory qdrant-client store it never
    touches while ingesting (the worker writes the embedded engine under `data_dir`)."""
    settings = Settings(
        mode=Mode.distributed,
        data_dir=data_dir,
        store_backend=StoreBackend.qdrant,
        qdrant_url=":memory:",
        broker_url=broker,
        task_batch_size=16,
        analytics_max_age_s=0,  # rankings reload live assignments at once (default: 30 s)
    )
    return build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())


def _items(n: int, tag: str) -> list[dict[str, Any]]:
    path = ROOT / "data" / "sample" / "banking77_sample.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    for row in rows:
        row["external_id"] = f"{tag}-{row['external_id']}"
    return rows


def test_worker_ingests_and_survives_a_kill(tmp_path: Path, broker: str) -> None:
    api_service = _api_service(tmp_path, broker)
    log = tmp_path / "worker.log"
    app = create_app(service=api_service, dispatch=CeleryDispatcher())
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {api_service.records.create_key('default')}"
        first = _start_worker(tmp_path, broker, log)
        try:
            r = client.post("/v1/feedback", json={"items": _items(40, "a")})
            assert r.status_code == 202, r.text
            job = _wait_job(  # long-polls the API while the real worker runs the batches
                client, r.json()["job_id"], lambda j: j["status"] == "succeeded", poll=0, wait=30
            )
            assert job["counts"]["stored"] == 40

            # Second job: kill the worker once it is part-way through, then start another.
            r = client.post("/v1/feedback", json={"items": _items(600, "b")})
            job_id = r.json()["job_id"]
            _wait_job(client, job_id, lambda j: j["counts"]["stored"] >= 16, timeout=120, poll=0.05)
            _stop(first, signal.SIGKILL)
            mid = client.get(f"/v1/jobs/{job_id}").json()
            assert mid["counts"]["pending"] > 0, "the kill came too late to test anything"
            second = _start_worker(tmp_path, broker, log)
            try:
                job = _wait_job(client, job_id, lambda j: j["counts"]["pending"] == 0)
            finally:
                _stop(second)
        finally:
            _stop(first, signal.SIGKILL)
        assert job["status"] == "succeeded", log.read_text()[-3000:]
        assert job["counts"]["stored"] == 600 and job["counts"]["failed"] == 0
    api_service.close()

    # The worker's store now holds every mention; the real model finds semantic neighbours.
    reader = build_service(Settings(data_dir=tmp_path, store_backend=StoreBackend.edge))
    try:
        assert reader.store.count("default") >= 640
        hits = reader.search("default", SearchRequest(query="my card still has not arrived", k=5))
        assert any(h.metadata.get("intent") == "card_arrival" for h in hits.hits[:3])
    finally:
        reader.close()


def test_a_threads_pool_worker_loads_its_models_before_its_first_batch(
    tmp_path: Path, broker: str
) -> None:
    """`--pool threads` runs tasks in the worker's own process, where no pool process starts:
    it warms up once the worker is ready (before, its first batch loaded the models)."""
    api_service = _api_service(tmp_path, broker)
    log = tmp_path / "worker.log"
    worker = _start_worker(tmp_path, broker, log, "--pool", "threads", "--concurrency", "2")
    try:
        deadline = time.monotonic() + 120
        while "warm-up done" not in log.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert "warm-up done" in log.read_text(), log.read_text()[-3000:]
        app = create_app(service=api_service, dispatch=CeleryDispatcher())
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {api_service.records.create_key('default')}"
            r = client.post("/v1/feedback", json={"items": _items(40, "t")})
            job = _wait_job(
                client, r.json()["job_id"], lambda j: j["counts"]["pending"] == 0, wait=30
            )
    finally:
        _stop(worker)
    api_service.close()
    assert job["status"] == "succeeded" and job["counts"]["stored"] == 40, log.read_text()[-3000:]
    assert log.read_text().count("warm-up done") == 1  # once for the process, not per thread


def test_worker_refits_themes_and_delivers_a_signed_webhook(tmp_path: Path, broker: str) -> None:
    """The theme and link tasks in distributed mode, run by a real worker over Redis: a refit
    queued through the API (followed through the job API), then a roadmap status change whose
    webhook the worker delivers, retried after a 500, signed."""
    from standardwebhooks.webhooks import Webhook as Verifier

    from tests.api.test_roadmap_api import Receiver

    api_service = _api_service(tmp_path, broker)
    log = tmp_path / "worker.log"
    # a visibility timeout well past the retry's countdown (up to 5 s): no redelivery here
    worker = _start_worker(
        tmp_path, broker, log, broker_visibility_timeout_s="120", webhook_max_retries="3"
    )
    app = create_app(service=api_service, dispatch=CeleryDispatcher())
    try:
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {api_service.records.create_key('default')}"
            r = client.post("/v1/feedback", json={"items": _items(600, "r")})
            job = _wait_job(client, r.json()["job_id"], lambda j: j["status"] != "queued" and
                            j["counts"]["pending"] == 0, wait=30)  # fmt: skip
            assert job["counts"]["stored"] == 600, log.read_text()[-3000:]

            r = client.post("/v1/themes/refit")
            assert r.status_code == 202, r.text
            run = _wait_job(client, r.json()["job_id"], lambda j: j["status"] in ("succeeded",
                            "failed"), timeout=300, poll=1)  # fmt: skip
            assert run["status"] == "succeeded", (run, log.read_text()[-3000:])
            assert run["result"]["themes"] >= 5 and run["result"]["mentions"] >= 600
            ranked = client.get("/v1/themes", params={"window": "3650d", "limit": 100}).json()
            assert ranked["taxonomy_version"] == run["result"]["taxonomy_version"]
            # every item in a theme (one with mentions in two themes counts in both)
            assert sum(t["items"] for t in ranked["themes"]) >= 600, ranked

            # live assignment at ingest, in the worker, onto the refit's themes
            r = client.post("/v1/feedback", json={"items": _items(40, "live")})
            job = _wait_job(client, r.json()["job_id"], lambda j: j["status"] != "queued" and
                            j["counts"]["pending"] == 0, wait=30)  # fmt: skip
            assert job["counts"]["stored"] == 40
            before, deadline = sum(t["items"] for t in ranked["themes"]), time.monotonic() + 30
            while time.monotonic() < deadline:  # the API reloads its columns in the background
                after = client.get("/v1/themes", params={"window": "3650d", "limit": 100}).json()
                assigned = sum(t["items"] for t in after["themes"]) - before
                if assigned >= 30:  # a few may wait in the unassigned pool
                    break
                time.sleep(0.5)
            assert assigned >= 30, after

            receiver = Receiver([500, 200])
            hook = client.post("/v1/webhooks", json={"url": receiver.url}).json()
            item = {"key": "CARD-1", "title": "Faster card delivery", "status": "planned"}
            assert client.post("/v1/roadmap", json={"items": [item]}).status_code == 200
            r = client.patch("/v1/roadmap/CARD-1", json={"status": "shipped"})
            assert r.status_code == 200, r.text
            deadline, deliveries = time.monotonic() + 60, []
            while time.monotonic() < deadline:
                deliveries = client.get("/v1/webhooks/deliveries").json()
                if deliveries and deliveries[0]["state"] != "pending":
                    break
                time.sleep(0.5)
    finally:
        _stop(worker)
        api_service.close()
    assert deliveries and deliveries[0]["state"] == "delivered", (
        deliveries,
        log.read_text()[-3000:],
    )
    assert deliveries[0]["attempts"] == 2 and len(receiver.seen) == 2
    headers, body = receiver.seen[-1]
    event = Verifier(hook["secret"]).verify(body, headers)  # raises if the signature is wrong
    assert event["key"] == "CARD-1" and (event["from"], event["to"]) == ("planned", "shipped")
