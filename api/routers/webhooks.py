"""Webhooks: where events go, and every delivery's fate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.deps import AdminAuth, RoadmapDep
from feedback_ai.errors import InvalidInput
from feedback_ai.link import schemas as s
from feedback_ai.link.webhooks import new_secret, valid_secret
from feedback_ai.records.theme_repo import utc

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=s.WebhookOut)
def create(body: s.WebhookIn, principal: AdminAuth, roadmap: RoadmapDep) -> s.WebhookOut:
    """Register a receiver; the signing secret is returned once (Standard Webhooks scheme)."""
    secret = body.secret or new_secret()
    if not valid_secret(secret):
        raise InvalidInput("secret must be 'whsec_' + base64", {"field": "secret"})
    hook = roadmap.db.add_webhook(principal.workspace, str(body.url), secret, list(body.events))
    return s.WebhookOut(
        id=hook.id, url=hook.url, events=hook.events, secret=secret, created_at=utc(hook.created_at)
    )


@router.get("", response_model=list[s.WebhookOut])
def list_hooks(principal: AdminAuth, roadmap: RoadmapDep) -> list[s.WebhookOut]:
    return [
        s.WebhookOut(id=h.id, url=h.url, events=h.events, created_at=utc(h.created_at))
        for h in roadmap.db.webhooks(principal.workspace)
    ]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(webhook_id: str, principal: AdminAuth, roadmap: RoadmapDep) -> None:
    roadmap.db.delete_webhook(principal.workspace, webhook_id)


@router.get("/deliveries", response_model=list[s.DeliveryOut])
def deliveries(
    principal: AdminAuth,
    roadmap: RoadmapDep,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[s.DeliveryOut]:
    """Recent deliveries, newest first: state, attempts, last HTTP status or error."""
    return [_out(d) for d in roadmap.db.deliveries(principal.workspace, state, limit)]


@router.post("/deliveries/{delivery_id}/retry", response_model=s.DeliveryOut)
def retry(
    delivery_id: str, principal: AdminAuth, roadmap: RoadmapDep, request: Request
) -> s.DeliveryOut:
    """Send a failed delivery again."""
    roadmap.db.requeue(principal.workspace, delivery_id)
    request.app.state.dispatch.deliver(delivery_id)
    return _out(roadmap.db.delivery(delivery_id, principal.workspace))


def _out(d: object) -> s.DeliveryOut:
    return s.DeliveryOut.model_validate(
        {k: getattr(d, k) for k in s.DeliveryOut.model_fields}
        | {"created_at": utc(d.created_at), "updated_at": utc(d.updated_at)}  # type: ignore[attr-defined]
    )
