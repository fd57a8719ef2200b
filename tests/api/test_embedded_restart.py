"""The embedded default on disk: data survives a restart, and batches a crash left pending are
resumed by the next start (the in-process queue has no broker to redeliver them)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from feedback_ai.config import Settings, StoreBackend
from feedback_ai.factory import build_service
from tests.fakes import HashEmbedder, PassthroughNLP


def _service(data_dir: Path):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=data_dir, store_backend=StoreBackend.edge, task_batch_size=2)
    return build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())


def _wait_stored(client: TestClient, job_id: str, n: int) -> None:
    for _ in range(200):
        if client.get(f"/v1/jobs/{job_id}").json()["counts"]["stored"] == n:
            return
        time.sleep(0.05)
    raise AssertionError(client.get(f"/v1/jobs/{job_id}").json())


def test_restart_keeps_data_and_resumes_pending(tmp_path: Path) -> None:
    # First life: items accepted, but the process "dies" before any batch runs.
    svc = _service(tmp_path)
    key = svc.records.create_key("default")
    lost: list[tuple[str, list[str]]] = []
    app = create_app(service=svc, dispatch=lambda job, ids: lost.append((job, ids)))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        items = [{"text": f"invoice export fails {i}"} for i in range(5)]
        job_id = client.post("/v1/feedback", json={"items": items}).json()["job_id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    svc.close()
    assert len(lost) == 3  # 5 items in batches of 2, never run

    # Second life: the real embedded dispatcher; the lifespan resumes the pending batches.
    svc = _service(tmp_path)
    with TestClient(create_app(service=svc)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        _wait_stored(client, job_id, 5)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    svc.close()

    # Third life: everything is still there.
    svc = _service(tmp_path)
    with TestClient(create_app(service=svc)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        hits = client.post("/v1/search", json={"query": "invoice export", "k": 10}).json()["hits"]
        assert len(hits) == 5
    svc.close()
