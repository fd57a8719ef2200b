"""Roadmap items, links, demand, requesters and signed webhooks through HTTP (real model)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook as Verifier

from api.app import create_app
from feedback_ai.config import Settings
from tests.conftest import INTENTS, kmeans
from workers.dispatch import InProcessDispatcher

pytestmark = pytest.mark.slow  # the real embedding model


class Receiver:
    """A webhook receiver on localhost: answers each request with the next status queued."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.seen = statuses, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.seen.append((dict(self.headers), body.decode()))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def env(theme_settings: Settings, real_embedder: Any, banking: dict) -> Iterator[Any]:
    from feedback_ai.factory import build_service
    from tests.fakes import PassthroughNLP

    settings = theme_settings.model_copy(update={"webhook_max_retries": 3})
    service = build_service(settings, embedder=real_embedder, nlp=PassthroughNLP())
    service.themes._components = kmeans(8)  # type: ignore[union-attr]
    dispatch = InProcessDispatcher(1)
    with TestClient(create_app(service=service, dispatch=dispatch)) as client:
        client.headers["Authorization"] = f"Bearer {service.records.create_key('default')}"
        items = [
            {
                "text": t,
                "source": "zendesk",
                "external_id": f"{k}-{i}",
                "account_id": f"acct-{i % 4}",
                "revenue": 1000.0 * (1 + i % 4),
            }
            for k in INTENTS
            for i, t in enumerate(banking[k])
        ]
        assert client.post("/v1/feedback", json={"items": items}).status_code == 202
        dispatch.drain()
        assert client.post("/v1/themes/refit").status_code == 202
        dispatch.drain()
        client.other = service.records.create_key("other")  # type: ignore[attr-defined]
        client.drain = dispatch.drain  # type: ignore[attr-defined]
        yield client
    dispatch.shutdown()
    service.close()


ROADMAP = [
    {
        "key": "PAY-1",
        "title": "Faster card delivery",
        "description": "Ship new cards in two days and let people track the card on its way.",
        "status": "planned",
        "tags": ["cards"],
    },
    {
        "key": "PAY-2",
        "title": "Live exchange rates",
        "description": "Show the exchange rate before a payment in another currency.",
        "status": "idea",
    },
    {"key": "PAY-3", "title": "Unblock PIN in the app", "status": "in_progress"},
]


def _home_theme(env: Any, texts: list[str]) -> str:
    """The theme holding most of `texts`."""
    wanted, held = {t.strip() for t in texts}, {}
    for theme in env.get("/v1/themes", params={"window": "365d", "limit": 50}).json()["themes"]:
        page = env.get(f"/v1/themes/{theme['id']}/feedback", params={"limit": 200}).json()
        held[theme["id"]] = sum(f["text"] in wanted for f in page["items"])
    return max(held, key=held.__getitem__)


def test_roadmap_links_demand_requesters_and_a_signed_event(env: Any, banking: dict) -> None:
    r = env.post("/v1/roadmap", json={"items": ROADMAP})
    assert r.status_code == 200 and r.json()["created"] == ["PAY-1", "PAY-2", "PAY-3"]
    again = env.post("/v1/roadmap", json={"items": ROADMAP[:1]}).json()  # idempotent by key
    assert again == {"created": [], "updated": ["PAY-1"], "status_changed": []}

    item = env.get("/v1/roadmap/PAY-1").json()
    suggested = [t for t in item["themes"] if t["state"] == "suggested"]
    assert suggested and 0 <= suggested[0]["confidence"] <= 1
    top = suggested[0]["theme_id"]
    # the theme holding most card_arrival queries (k-means may have merged it with lost cards)
    assert top == _home_theme(env, banking["card_arrival"])

    r = env.post(f"/v1/roadmap/PAY-1/themes/{top}", json={"action": "confirm"})
    assert r.status_code == 200
    linked = r.json()
    assert [t["state"] for t in linked["themes"] if t["theme_id"] == top] == ["confirmed"]
    assert linked["demand"]["items"] >= 30 and linked["demand"]["accounts"] == 4
    assert linked["demand"]["revenue"] == 10000.0  # 1k + 2k + 3k + 4k, once per account
    rejected = suggested[1]["theme_id"] if len(suggested) > 1 else None
    if rejected:
        env.post(f"/v1/roadmap/PAY-1/themes/{rejected}", json={"action": "reject"})
        again = env.get("/v1/roadmap/PAY-1").json()["themes"]
        assert all(t["state"] != "suggested" for t in again if t["theme_id"] == rejected)

    on = env.post("/v1/match", json={"text": "My new card still has not been delivered"}).json()
    assert on["roadmap"][0]["id"] == "PAY-1"
    off = env.post("/v1/match", json={"text": "The dark mode makes the charts unreadable"}).json()
    for kind in ("roadmap", "themes"):  # P(about any known entry), from the shipped calibrator
        assert 0 <= off["in_scope"][kind] < on["in_scope"][kind] <= 1

    feedback_id = env.get(f"/v1/themes/{top}/feedback").json()["items"][0]["id"]
    other_item = env.post("/v1/feedback", json={"items": [{"text": "when does my card arrive??"}]})
    env.drain()
    direct = env.get(f"/v1/jobs/{other_item.json()['job_id']}").json()
    assert direct["counts"]["stored"] == 1
    by_ranking = env.get("/v1/roadmap", params={"sort": "demand"}).json()
    assert by_ranking["items"][0]["key"] == "PAY-1"
    for listed in by_ranking["items"]:  # the page's batched reads agree with one item's
        assert listed["demand"] == env.get(f"/v1/roadmap/{listed['key']}").json()["demand"]

    receiver = Receiver([500, 200])
    hook = env.post("/v1/webhooks", json={"url": receiver.url}).json()
    assert hook["secret"].startswith("whsec_")
    r = env.patch("/v1/roadmap/PAY-1", json={"status": "shipped"})
    assert r.status_code == 200 and r.json()["status"] == "shipped"
    env.drain()
    deliveries = env.get("/v1/webhooks/deliveries").json()
    assert deliveries[0]["state"] == "delivered" and deliveries[0]["attempts"] == 2
    headers, body = receiver.seen[-1]
    event = Verifier(hook["secret"]).verify(body, headers)  # raises if the signature is wrong
    assert event["key"] == "PAY-1" and (event["from"], event["to"]) == ("planned", "shipped")
    assert event["demand"]["accounts"] == 4 and len(receiver.seen) == 2

    who = env.get("/v1/roadmap/PAY-1/requesters").json()
    assert who["status"] == "shipped" and len(who["accounts"]) == 4
    assert who["unattributed_items"] == 1  # the ticket sent without an account
    assert feedback_id in [f["id"] for f in who["feedback"]]


def test_a_failing_receiver_leaves_a_visible_failed_delivery(env: Any) -> None:
    env.post("/v1/roadmap", json={"items": ROADMAP[1:2]})
    receiver = Receiver([503, 503, 503, 503, 503])
    env.post("/v1/webhooks", json={"url": receiver.url})
    env.client_retry = None
    import workers.tasks as tasks

    original = tasks.backoff
    tasks.backoff = lambda retries, base=0, cap=0: 0.01  # type: ignore[assignment]
    try:
        env.patch("/v1/roadmap/PAY-2", json={"status": "planned"})
        env.drain()
    finally:
        tasks.backoff = original
    failed = env.get("/v1/webhooks/deliveries", params={"state": "failed"}).json()
    assert len(failed) == 1 and failed[0]["attempts"] == 4 and failed[0]["last_status"] == 503
    assert len(receiver.seen) == 4


def test_bad_roadmap_input(env: Any) -> None:
    cases = [
        ("post", "/v1/roadmap", {"items": [ROADMAP[0], ROADMAP[0]]}, 422, "duplicate keys"),
        ("post", "/v1/roadmap", {"items": [{**ROADMAP[0], "status": "someday"}]}, 422, "status"),
        ("post", "/v1/roadmap", {"items": [{**ROADMAP[0], "title": "  "}]}, 422, "title"),
        ("get", "/v1/roadmap/NOPE-1", None, 404, "NOPE-1"),
        ("post", "/v1/roadmap/NOPE-1/themes/th_x", {"action": "confirm"}, 404, "NOPE-1"),
        ("post", "/v1/feedback/nope/links", {"roadmap_key": "PAY-1"}, 404, "nope"),
        ("post", "/v1/webhooks", {"url": "not a url"}, 422, "url"),
        ("post", "/v1/match", {"text": ""}, 422, "text"),
        ("post", "/v1/match", {"text": "  \n "}, 422, "empty or whitespace"),
        ("post", "/v1/match", {"text": "card", "k": 0}, 422, "k"),
        ("post", "/v1/match", {"txt": "card"}, 422, "text"),
    ]
    env.post("/v1/roadmap", json={"items": ROADMAP})
    for method, path, body, code, words in cases:
        r = env.request(method, path, json=body)
        assert r.status_code == code, (path, r.text)
        assert words in json.dumps(r.json()), r.text
    # a theme of another workspace is unknown here
    theme = env.get("/v1/themes", params={"window": "3650d"}).json()["themes"][0]["id"]
    other = {"Authorization": f"Bearer {env.other}"}
    env.post("/v1/roadmap", json={"items": ROADMAP[:1]}, headers=other)
    r = env.post(f"/v1/roadmap/PAY-1/themes/{theme}", json={"action": "confirm"}, headers=other)
    assert r.status_code == 404
    r = env.post(
        "/v1/roadmap/import",
        files={"file": ("r.csv", b"key,title,status\nA-1,Ok,idea\nA-2,Bad,later\n")},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["row"] == 3
