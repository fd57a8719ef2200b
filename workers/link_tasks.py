"""Celery tasks of the link layer: webhook deliveries (retried with backoff) and their sweep."""

from __future__ import annotations

import logging
import time

from feedback_ai.link.webhooks import RetryableDelivery, deliver
from feedback_ai.records.link_repo import LinkRecords
from workers.celery_app import celery_app
from workers.tasks import backoff, get_service

log = logging.getLogger(__name__)


def links() -> LinkRecords:
    return LinkRecords(get_service().records)


@celery_app.task(bind=True, name="feedback_ai.deliver_webhook", acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    settings = get_service().settings
    retries = self.request.retries
    last = retries >= settings.webhook_max_retries
    try:
        return deliver(links(), delivery_id, settings.webhook_timeout_s, last_try=last)
    except RetryableDelivery as exc:
        countdown = backoff(retries, base=5.0, cap=3600.0)
        log.warning("delivery %s: retry %d in %.0fs: %s", delivery_id, retries + 1, countdown, exc)
        if self.request.is_eager:
            time.sleep(countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@celery_app.task(name="feedback_ai.requeue_deliveries")
def requeue_deliveries(older_than_s: float = 900.0) -> int:
    """Celery beat: re-send deliveries still pending long after they were queued (a lost
    message or a dead worker). Sending is idempotent per delivery id (receivers dedupe)."""
    pending = links().pending_deliveries(older_than_s)
    for delivery_id in pending:
        deliver_webhook.apply_async(args=(delivery_id,))
    return len(pending)
