"""The theme API end to end on real BANKING77 queries and the real embedding model: refit as
a job, rankings counted by item, trends, alerts, the tree, edits, live assignment, emerging
themes, workspace isolation and bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from feedback_ai.config import Settings
from tests.conftest import EXTRA_INTENT, INTENTS, kmeans
from workers.dispatch import InProcessDispatcher

pytestmark = pytest.mark.slow  # the real embedding model

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)  # windows end before it: items are an hour older


class Env:
    def __init__(self, client: TestClient, dispatch: InProcessDispatcher, other: str) -> None:
        self.client, self.dispatch, self.other = client, dispatch, other

    def ingest(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 500):
            r = self.client.post("/v1/feedback", json={"items": items[start : start + 500]})
            assert r.status_code == 202, r.text
        self.dispatch.drain()

    def refit(self) -> dict[str, Any]:
        r = self.client.post("/v1/themes/refit")
        assert r.status_code == 202, r.text
        self.dispatch.drain()
        job = self.client.get(f"/v1/jobs/{r.json()['job_id']}").json()
        assert job["status"] == "succeeded", job
        return job

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def env(theme_settings: Settings, real_embedder: Any) -> Iterator[Env]:
    from feedback_ai.factory import build_service
    from tests.fakes import PassthroughNLP

    settings = theme_settings.model_copy(update={"emerging_check_every": 5})
    service = build_service(settings, embedder=real_embedder, nlp=PassthroughNLP())
    service.themes._components = kmeans(8)  # type: ignore[union-attr]
    dispatch = InProcessDispatcher(1)
    with TestClient(create_app(service=service, dispatch=dispatch)) as client:
        client.headers["Authorization"] = f"Bearer {service.records.create_key('default')}"
        yield Env(client, dispatch, service.records.create_key("other"))
    dispatch.shutdown()
    service.close()


def corpus(banking: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Each intent's queries spread over 8 weeks, accounts a0..a4 with ARR by account; the last
    week of `card_arrival` is a spike (its 20 newest queries all in it)."""
    items = []
    for n, intent in enumerate(INTENTS):
        for i, text in enumerate(banking[intent]):
            days = (i % 20) * 3 if not (intent == "card_arrival" and i >= 20) else i % 7
            items.append(
                {
                    "text": text,
                    "source": "zendesk",
                    "external_id": f"{intent}-{i}",
                    "created_at": (NOW - timedelta(days=days, hours=n + 1)).isoformat(),
                    "account_id": f"a{i % 5}",
                    "revenue": 1000.0 * (1 + i % 5),
                    "rating": float(i % 11),
                    "rating_scale": "nps",
                }
            )
    return items


def by_intent(env: Env, banking: dict[str, list[str]]) -> dict[str, str]:
    """intent -> the theme holding most of its queries."""
    themes = env.get("/v1/themes", window="365d", until=NOW.isoformat(), limit=50)["themes"]
    intent_of = {t.strip(): k for k in (*INTENTS, EXTRA_INTENT) for t in banking[k]}
    votes: dict[str, Counter[str]] = {}
    for theme in themes:
        page = env.get(f"/v1/themes/{theme['id']}/feedback", limit=200)
        for item in page["items"]:
            intent = intent_of[item["text"].removesuffix(" please")]
            votes.setdefault(intent, Counter())[theme["id"]] += 1
    return {intent: c.most_common(1)[0][0] for intent, c in votes.items()}


def test_refit_rank_trend_alerts_tree(env: Env, banking: dict[str, list[str]]) -> None:
    env.ingest(corpus(banking))
    job = env.refit()
    assert job["kind"] == "refit" and job["result"]["themes"] == 8 and job["stage"] == "done"

    listing = env.get("/v1/themes", window="365d", until=NOW.isoformat(), limit=50)
    assert listing["taxonomy_version"] == 1 and listing["total"] == 8
    assert sum(t["items"] for t in listing["themes"]) >= len(INTENTS) * 40
    top = listing["themes"][0]
    assert top["items"] >= top["accounts"] and top["accounts"] <= 5
    assert top["revenue"] <= 15000.0  # ARR once per account: at most 1k + 2k + ... + 5k
    assert len(top["evidence"]) == 5 and top["rating"]["nps"]["n"] > 0

    card = by_intent(env, banking)["card_arrival"]
    week = env.get("/v1/themes", window="7d", until=NOW.isoformat(), sort="growth")
    assert week["themes"][0]["id"] == card  # 20 of its queries landed in the last week
    trend = env.get(
        f"/v1/themes/{card}/trend", interval="week", **{"from": "2026-04-01", "to": "2026-07-01"}
    )
    assert sum(b["items"] for b in trend["buckets"]) == env.get(f"/v1/themes/{card}")["items"]
    assert sum(b["items"] for b in trend["buckets"][-2:]) >= 20  # the spike week spans two
    alerts = env.get("/v1/themes/alerts", at=NOW.isoformat())["alerts"]
    assert [a["theme_id"] for a in alerts if a["kind"] == "spike"] == [card]
    assert alerts[0]["evidence"] and alerts[0]["p_value"] < 0.01 / 8

    tree = env.get("/v1/themes/tree", threshold=0.3)
    assert sum(len(g["themes"]) for g in tree["groups"]) == 8


def test_live_assignment_and_an_emerging_theme(env: Env, banking: dict[str, list[str]]) -> None:
    env.ingest(corpus(banking)[:-40])  # atm_support held back
    env.client.app.state.themes._components = kmeans(7)  # type: ignore[attr-defined]
    env.refit()
    before = env.get("/v1/themes", window="365d", until=NOW.isoformat())["total"]
    new = [
        {"text": t, "source": "nps", "created_at": NOW.isoformat()} for t in banking[EXTRA_INTENT]
    ]
    env.ingest(new)
    listing = env.get("/v1/themes", window="365d", until=(NOW + timedelta(days=1)).isoformat())
    emerging = [t for t in listing["themes"] if t["status"] == "emerging"]
    assert listing["total"] == before + 1 and len(emerging) == 1 and emerging[0]["is_new"]
    assert emerging[0]["items"] >= 8
    alerts = env.get("/v1/themes/alerts", at=(NOW + timedelta(days=1)).isoformat())["alerts"]
    assert emerging[0]["id"] in [a["theme_id"] for a in alerts if a["kind"] == "new_theme"]

    # Variants of a theme's own queries join it live. The threshold is the 5% quantile of all
    # members' similarity to their centroid, so a loose theme such as this one keeps fewer than
    # 95% (live coverage of the BANKING77 test split is 94%): ask for 70% of all 40 of them,
    # not 4 of 5, so that a query or two near the threshold (vectors shift a little with the
    # CPU's int8 kernels and with which texts share a model run) cannot decide the test.
    known = [
        {"text": t + " please", "source": "nps", "created_at": NOW.isoformat()}
        for t in banking["exchange_rate"]
    ]
    env.ingest(known)
    theme = by_intent(env, banking)["exchange_rate"]
    page = env.get(f"/v1/themes/{theme}/feedback", limit=200)
    assert sum(i["origin"] == "live" for i in page["items"]) >= 28


def test_edits_through_the_api(env: Env, banking: dict[str, list[str]]) -> None:
    env.ingest(corpus(banking))
    env.refit()
    themes = by_intent(env, banking)
    a, b = themes["pin_blocked"], themes["lost_or_stolen_card"]
    r = env.client.patch(f"/v1/themes/{a}", json={"label": "PIN problems"})
    assert r.status_code == 200 and r.json()["taxonomy_version"] == 2
    assert env.get(f"/v1/themes/{a}")["label"] == "PIN problems"
    r = env.client.post(f"/v1/themes/{a}/merge", json={"into": b})
    assert r.status_code == 200, r.text
    merged = env.get(f"/v1/themes/{a}")
    assert merged["status"] == "merged" and merged["merged_into"] == b
    assert [h["kind"] for h in merged["history"]][:2] == ["merged", "renamed"]
    r = env.client.post(f"/v1/themes/{b}/split", json={"n": 2})
    assert r.status_code == 200 and len(r.json()["theme_ids"]) == 2
    child = env.get(f"/v1/themes/{r.json()['theme_ids'][1]}")
    assert child["split_from"] == b and child["origin"] == "split"
    item = env.get(f"/v1/themes/{themes['age_limit']}/feedback", limit=1)["items"][0]["id"]
    r = env.client.post(f"/v1/themes/{themes['atm_support']}/feedback", json={"item_id": item})
    assert r.status_code == 200, r.text
    ids = [
        i["id"] for i in env.get(f"/v1/themes/{themes['atm_support']}/feedback", limit=200)["items"]
    ]
    assert item in ids


def test_bad_input_and_isolation(env: Env, banking: dict[str, list[str]]) -> None:
    r = env.client.post("/v1/themes/refit")  # nothing stored: the job fails with the reason
    env.dispatch.drain()
    job = env.get(f"/v1/jobs/{r.json()['job_id']}")
    assert job["status"] == "failed" and "at least" in job["error"]
    env.ingest(corpus(banking))
    env.refit()
    some = env.get("/v1/themes", window="365d", until=NOW.isoformat())["themes"][0]["id"]
    cases = [
        ("get", "/v1/themes/th_missing", None, 404),
        ("get", "/v1/themes", {"window": "thirty days"}, 422),
        ("get", "/v1/themes", {"sort": "loudest"}, 422),
        ("get", f"/v1/themes/{some}/trend", {"interval": "hour"}, 422),
        ("get", f"/v1/themes/{some}/trend", {"from": "2026-05-01", "to": "2026-04-01"}, 422),
        ("post", f"/v1/themes/{some}/merge", {"into": some}, 422),
        ("post", f"/v1/themes/{some}/split", {"n": 1}, 422),
        ("post", f"/v1/themes/{some}/merge", {"into": "th_missing"}, 404),
        ("patch", f"/v1/themes/{some}", {"label": "x", "colour": "red"}, 422),
        ("post", f"/v1/themes/{some}/feedback", {"item_id": "nope"}, 404),
    ]
    for method, path, body, code in cases:
        kw = {"params": body} if method == "get" else {"json": body}
        r = getattr(env.client, method)(path, **kw)
        assert r.status_code == code, (path, body, r.text)
        assert set(r.json()) == {"error", "detail"}

    other = {"Authorization": f"Bearer {env.other}"}
    assert env.client.get(f"/v1/themes/{some}", headers=other).status_code == 404
    assert env.client.get("/v1/themes", headers=other).json()["total"] == 0
    r = env.client.post(f"/v1/themes/{some}/split", json={"n": 2}, headers=other)
    assert r.status_code == 404
