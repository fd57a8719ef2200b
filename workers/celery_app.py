"""The one Celery app, configured from `Settings` (broker: Redis)."""

from __future__ import annotations

from celery import Celery

from feedback_ai.config import Settings


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery(
        "feedback_ai",
        broker=settings.broker_url,
        include=["workers.tasks", "workers.theme_tasks", "workers.link_tasks"],
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # job state lives in the records database, not in results
        task_acks_late=True,  # ack after the body ran: a killed worker's message is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # a pool process loads its models before it reports up (`workers.tasks.warm_up`)
        worker_proc_alive_timeout=300.0,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        task_default_queue="feedback_ai",
        beat_schedule={
            "requeue-stale-pending": {"task": "feedback_ai.requeue_pending", "schedule": 600.0},
            "requeue-deliveries": {"task": "feedback_ai.requeue_deliveries", "schedule": 600.0},
            "refit-themes": {
                "task": "feedback_ai.refit_all",
                "schedule": float(settings.theme_refit_every_s),
            },
        },
    )
    return app


celery_app = make_celery()
