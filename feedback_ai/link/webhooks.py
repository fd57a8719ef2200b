"""Webhook deliveries: signed with the Standard Webhooks scheme, retried, never lost silently.

A delivery row is written (state `pending`) in the same transaction as the change that caused
it (`LinkRecords.upsert_items`), then a task sends it. Each attempt is recorded (HTTP status or
error). A 2xx marks it `delivered`; a timeout, a connection error, a 429 or a 5xx is retried with
exponential backoff (the task's retries); any other status, or the last retry, marks it `failed`.
Failed deliveries are listed by `GET /v1/webhooks/deliveries?state=failed` and can be re-sent.

Signature (https://www.standardwebhooks.com, package `standardwebhooks`): headers `webhook-id`
(the delivery id: receivers dedupe on it), `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the webhook's secret). Receivers verify
with `standardwebhooks.Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from feedback_ai.records.link_repo import LinkRecords

RETRYABLE = {408, 425, 429}


class RetryableDelivery(Exception):
    """The receiver may accept the delivery later: retry with backoff."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def valid_secret(secret: str) -> bool:
    try:
        Signer(secret)
    except Exception:  # bad base64 or empty
        return False
    return True


def signed(delivery_id: str, secret: str, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(secret).sign(delivery_id, now, body),
    }
    return body, headers


def deliver(db: LinkRecords, delivery_id: str, timeout_s: float, last_try: bool) -> str:
    """One attempt; returns the delivery's new state. Raises `RetryableDelivery` when the
    attempt failed in a way worth retrying and this is not the last try."""
    delivery = db.delivery(delivery_id)
    if delivery.state != "pending":
        return delivery.state  # delivered or failed already (a replayed task)
    hook = db.webhook(delivery.webhook_id)
    if hook is None or not hook.active:
        db.record_attempt(delivery_id, "failed", None, "the webhook was removed")
        return "failed"
    body, headers = signed(delivery_id, hook.secret, delivery.payload)
    try:
        response = httpx.post(hook.url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return _failed(db, delivery_id, None, f"{type(exc).__name__}: {exc}", True, last_try)
    if 200 <= response.status_code < 300:
        db.record_attempt(delivery_id, "delivered", response.status_code, None)
        return "delivered"
    retry = response.status_code in RETRYABLE or response.status_code >= 500
    reason = f"HTTP {response.status_code}: {response.text[:200]}"
    return _failed(db, delivery_id, response.status_code, reason, retry, last_try)


def _failed(
    db: LinkRecords, delivery_id: str, status: int | None, error: str, retry: bool, last: bool
) -> str:
    if retry and not last:
        db.record_attempt(delivery_id, "pending", status, error)
        raise RetryableDelivery(error)
    db.record_attempt(delivery_id, "failed", status, error)
    return "failed"
