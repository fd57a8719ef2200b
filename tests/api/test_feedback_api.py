"""Every endpoint through HTTP, good and bad input, on the embedded in-process queue.

Fast: a hashing embedder and pass-through NLP stand in for the models (tested on their own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from workers.dispatch import InProcessDispatcher


class Env:
    def __init__(self, client: TestClient, dispatch: InProcessDispatcher, service: Any) -> None:
        self.client, self.dispatch, self.service = client, dispatch, service

    def post(self, items: list[Any], **kw: Any) -> Any:
        return self.client.post("/v1/feedback", json={"items": items}, **kw)

    def ingest(self, items: list[Any]) -> dict[str, Any]:
        r = self.post(items)
        assert r.status_code == 202, r.text
        self.dispatch.drain()
        return r.json()

    def search(self, query: str, **kw: Any) -> list[dict[str, Any]]:
        r = self.client.post("/v1/search", json={"query": query, **kw})
        assert r.status_code == 200, r.text
        return r.json()["hits"]


@pytest.fixture
def env(fake_service: Any) -> Iterator[Env]:
    dispatch = InProcessDispatcher(1)
    app = create_app(service=fake_service, dispatch=dispatch)
    with TestClient(app) as client:
        key = fake_service.records.create_key("default")
        client.headers["Authorization"] = f"Bearer {key}"
        yield Env(client, dispatch, fake_service)
    dispatch.shutdown()


def test_ingest_then_job_search_get_delete(env: Env) -> None:
    body = env.ingest(
        [
            {"text": "Export to PDF keeps crashing", "source": "zendesk", "external_id": "t-1"},
            {"text": "Please add dark mode", "source": "nps", "rating": 9, "rating_scale": "nps"},
        ]
    )
    job = env.client.get(f"/v1/jobs/{body['job_id']}").json()
    assert job["status"] == "succeeded"
    assert job["counts"]["accepted"] == 2 and job["counts"]["stored"] == 2

    hits = env.search("pdf export crashing")
    assert hits[0]["text"] == "Export to PDF keeps crashing"
    item_id = hits[0]["id"]
    item = env.client.get(f"/v1/feedback/{item_id}").json()
    assert item["source"] == "zendesk" and item["status"] == "stored"

    assert env.client.delete(f"/v1/feedback/{item_id}").status_code == 204
    assert env.client.get(f"/v1/feedback/{item_id}").status_code == 404
    assert item_id not in {h["id"] for h in env.search("pdf export crashing")}
    assert env.service.store.count("default") == 1


def test_resend_with_external_id_updates_not_duplicates(env: Env) -> None:
    env.ingest([{"text": "slow sync! very slow", "source": "zendesk", "external_id": "42"}])
    env.ingest([{"text": "sync fixed", "source": "zendesk", "external_id": "42"}])
    assert env.service.records.count_items("default") == 1
    assert env.service.store.count("default") == 1  # the old two mentions are gone
    assert env.search("sync")[0]["text"] == "sync fixed"


def test_without_external_id_content_hash_dedupes(env: Env) -> None:
    env.ingest([{"text": "same words"}])
    env.ingest([{"text": "  same words  "}])
    assert env.service.records.count_items("default") == 1


def test_mentions_grouped_by_item(env: Env) -> None:
    env.ingest([{"text": "billing page is slow! billing export broken"}])
    hits = env.search("billing")
    assert len(hits) == 1 and len(hits[0]["mentions"]) == 2


def test_collapse_near_duplicates(env: Env) -> None:
    env.ingest([{"text": "add dark mode please"}, {"text": "please add dark mode"}])
    assert len(env.search("dark mode")) == 2
    collapsed = env.search("dark mode", collapse_duplicates=True)
    assert len(collapsed) == 1 and collapsed[0]["duplicate_count"] == 1


def test_search_filters(env: Env) -> None:
    env.ingest(
        [
            {"text": "login fails", "source": "zendesk", "account_id": "a1",
             "created_at": "2024-01-05T00:00:00Z", "metadata": {"plan": "pro"}},
            {"text": "login fails again", "source": "intercom", "account_id": "a2",
             "created_at": "2024-03-05T00:00:00Z", "rating": 2, "rating_scale": "stars"},
        ]
    )  # fmt: skip

    def texts(**filters: Any) -> set[str]:
        return {h["text"] for h in env.search("login", filters=filters)}

    assert texts(source="zendesk") == {"login fails"}
    assert texts(account_id=["a2"]) == {"login fails again"}
    assert texts(created_from="2024-02-01T00:00:00Z") == {"login fails again"}
    assert texts(rating_max=3) == {"login fails again"}
    assert texts(metadata={"plan": "pro"}) == {"login fails"}


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        ({"text": ""}, "text", "empty"),
        ({"text": "   \n\t"}, "text", "empty"),
        ({"text": "x" * 20_001}, "text", "maximum is 20000"),
        ({"text": "nul\x00byte"}, "text", "NUL"),
        ({"text": 42}, "text", "string"),
        ({"text": "ok", "colour": "red"}, "colour", "unknown field"),
        ({"text": "ok", "revenue": -5}, "revenue", "greater than or equal"),
        ({"text": "ok", "rating": 11, "rating_scale": "nps"}, None, "outside"),
        ({"text": "ok", "rating": 3}, None, "rating_scale"),
        ({"text": "ok", "created_at": "yesterday"}, "created_at", "datetime"),
        ({"text": "ok", "metadata": [1, 2]}, "metadata", "dictionary"),
        ({"text": "ok", "metadata": {"k": "v" * 9000}}, "metadata", "maximum"),
        ("just a string", None, "dictionary"),
    ],
)
def test_invalid_item_reported_valid_kept(env: Env, item: Any, field: str, reason: str) -> None:
    r = env.post([{"text": "a valid neighbour"}, item])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1
    [err] = body["rejected"]
    assert err["index"] == 1 and reason in err["reason"]
    if field:
        assert err["field"] == field


def test_all_invalid_is_422(env: Env) -> None:
    r = env.post([{"text": ""}])
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_input"
    assert r.json()["detail"][0]["index"] == 0


def test_duplicate_external_ids_in_batch(env: Env) -> None:
    r = env.post(
        [
            {"text": "first", "source": "zendesk", "external_id": "7"},
            {"text": "second", "source": "zendesk", "external_id": "7"},
            {"text": "other source", "source": "intercom", "external_id": "7"},
        ]
    )
    body = r.json()
    assert body["accepted"] == 2
    assert (
        body["rejected"][0]["index"] == 1 and "already at index 0" in body["rejected"][0]["reason"]
    )


def test_batch_limits_and_body_errors(env: Env) -> None:
    r = env.post([{"text": "x"}] * 1001)
    assert r.status_code == 413 and "maximum is 1000" in r.json()["detail"]
    assert env.post([]).status_code == 422
    r = env.client.post(
        "/v1/feedback", content=b'{"items": [{"text": "\xff\xfe"}]}',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_body",
        "detail": "the body is not valid JSON in UTF-8",
    }
    r = env.client.post(
        "/v1/feedback", content=b'{"items": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"][0]["reason"]
    r = env.client.post("/v1/feedback", json={"items": [], "extra": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["reason"] == "unknown field"


def test_auth(env: Env) -> None:
    anon = {"Authorization": ""}
    assert env.client.post("/v1/search", json={"query": "x"}, headers=anon).status_code == 401
    bad = {"Authorization": "Bearer fai_nope"}
    r = env.client.post("/v1/search", json={"query": "x"}, headers=bad)
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    read_only = env.service.records.create_key("default", ["read"])
    r = env.post([{"text": "hi"}], headers={"Authorization": f"Bearer {read_only}"})
    assert r.status_code == 403 and r.json()["detail"]["needed"] == "ingest"


def test_workspace_isolation(env: Env) -> None:
    env.ingest([{"text": "secret roadmap complaint"}])
    [hit] = env.search("secret roadmap complaint")
    other = {"Authorization": f"Bearer {env.service.records.create_key('acme')}"}
    c = env.client
    r = c.post("/v1/search", json={"query": "secret roadmap complaint"}, headers=other)
    assert r.json()["hits"] == []
    assert c.get(f"/v1/feedback/{hit['id']}", headers=other).status_code == 404
    assert c.delete(f"/v1/feedback/{hit['id']}", headers=other).status_code == 404
    job_id = c.post("/v1/feedback", json={"items": [{"text": "acme thing"}]}, headers=other)
    env.dispatch.drain()
    assert c.get(f"/v1/jobs/{job_id.json()['job_id']}").status_code == 404
    assert env.service.store.count("default") == 1 and env.service.store.count("acme") == 1


def test_failed_item_visible_in_job(env: Env) -> None:
    body = env.ingest([{"text": "fine"}, {"text": "BOOM here"}])
    job = env.client.get(f"/v1/jobs/{body['job_id']}").json()
    assert job["status"] == "succeeded"
    assert job["counts"]["stored"] == 1 and job["counts"]["failed"] == 1
    assert "cannot process" in job["failed"][0]["reason"]


def test_import_csv_with_mapping_and_bad_rows(env: Env) -> None:
    csv_bytes = (
        b"id,review,when,stars,scale\n"
        b"r1,Great app but sync is slow,2024-01-01,4,stars\n"
        b"r2,bad \xff bytes,2024-01-03,2,stars\n"
        b"r3,,2024-01-04,1,stars\n"
        b"r4,too,many,values,here,!\n"
        b"r5,Fine too,2024-01-05,11,nps\n"
        b'r6,"unterminated quote,2024-01-02,3,stars\n'
    )
    mapping = (
        '{"external_id": "id", "text": "review", "created_at": "when", "rating": "stars",'
        ' "rating_scale": "scale"}'
    )
    r = env.client.post(
        "/v1/feedback/import",
        files={"file": ("reviews.csv", csv_bytes, "text/csv")},
        data={"mapping": mapping, "source": "app_store"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1
    reasons = {e["index"]: e["reason"] for e in body["rejected"]}
    assert "UTF-8" in reasons[3] and "required" in reasons[4]
    assert "values" in reasons[5] and "outside" in reasons[6] and "malformed" in reasons[7]
    env.dispatch.drain()
    [hit] = env.search("sync slow")
    assert hit["source"] == "app_store" and hit["rating"] == 4


def test_import_jsonl(env: Env) -> None:
    lines = b'{"text": "one", "source": "nps"}\nnot json\n[1]\n{"text": "two", "bogus": 1}\n'
    lines += b'{"text": "bad \xff"}\n{"body": "three"}\n'
    r = env.client.post(
        "/v1/feedback/import",
        files={"file": ("f.jsonl", lines, "application/x-ndjson")},
        data={"mapping": '{"text": "body"}'},
    )
    body = r.json()
    assert r.status_code == 202 and body["accepted"] == 2
    reasons = {e["index"]: e["reason"] for e in body["rejected"]}
    assert "invalid JSON" in reasons[2] and "JSON object" in reasons[3]
    assert reasons[4] == "unknown field" and "UTF-8" in reasons[5]
    env.dispatch.drain()
    assert env.client.get(f"/v1/jobs/{body['job_id']}").json()["counts"]["stored"] == 2


def test_import_bad_requests(env: Env) -> None:
    post = env.client.post
    files = {"file": ("f.txt", b"x", "text/plain")}
    assert post("/v1/feedback/import", files=files).status_code == 422
    files = {"file": ("f.csv", b"text\nhello\n", "text/csv")}
    r = post("/v1/feedback/import", files=files, data={"mapping": "{nope"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "mapping"
    r = post("/v1/feedback/import", files=files, data={"mapping": '{"colour": "x"}'})
    assert r.status_code == 422 and "unknown fields ['colour']" in r.json()["detail"]["message"]


def test_health(env: Env) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    r = env.client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert "/v1/search" in env.client.get("/openapi.json").json()["paths"]


def test_search_modes(env: Env) -> None:
    env.ingest([{"text": "refund for order 1234"}, {"text": "cannot log in"}])
    for mode in ("hybrid", "dense"):
        hits = env.search("refund order", mode=mode)
        assert hits[0]["text"] == "refund for order 1234"
        assert 0 < hits[0]["score"] <= 1.0001  # cosine similarity in both modes
    r = env.client.post("/v1/search", json={"query": "x", "mode": "bm25"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "body.mode"
    r = env.client.post("/v1/search", json={"query": "   "})
    assert r.status_code == 422 and "empty" in r.json()["detail"][0]["reason"]
    r = env.client.post("/v1/search", json={"query": "x", "k": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "body.k"


def test_same_text_twice_in_one_batch_is_one_item(env: Env) -> None:
    body = env.ingest([{"text": "same"}, {"text": "other"}, {"text": " same ", "segment": "smb"}])
    assert body["accepted"] == 2 and body["merged"] == 1 and body["rejected"] == []
    job = env.client.get(f"/v1/jobs/{body['job_id']}").json()
    assert job["counts"]["accepted"] == 2 and job["counts"]["stored"] == 2
    assert env.search("same", k=1)[0]["segment"] == "smb"  # the later one wins


def test_job_long_poll_returns_when_the_job_finishes(fake_service: Any) -> None:
    """`?wait=S` answers as soon as the job is done, not after S; a job still queued at the
    deadline is answered as queued; a wait outside 0..60 is a 422 naming the parameter."""
    held: list[tuple[str, list[str]]] = []
    runner = InProcessDispatcher(1)
    app = create_app(service=fake_service, dispatch=lambda job, ids: held.append((job, ids)))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {fake_service.records.create_key('default')}"
        items = [{"text": "export to csv is broken"}, {"text": "please add dark mode"}]
        job_id = client.post("/v1/feedback", json={"items": items}).json()["job_id"]

        t = time.monotonic()
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 0.3}).json()
        assert job["status"] == "queued" and time.monotonic() - t >= 0.3

        # The batches run 0.3 s into a 30 s wait: the answer comes when they are stored.
        release = threading.Timer(0.3, lambda: [runner(*batch) for batch in held])
        release.start()
        t = time.monotonic()
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        waited = time.monotonic() - t
        release.join()
        assert job["status"] == "succeeded" and job["counts"]["stored"] == 2
        assert 0.3 <= waited < 15, waited

        for bad in (-1, 61, "soon"):
            r = client.get(f"/v1/jobs/{job_id}", params={"wait": bad})
            assert r.status_code == 422, r.text
            assert "wait" in r.text
        assert client.get("/v1/jobs/no-such-job", params={"wait": 1}).status_code == 404
    runner.shutdown()
