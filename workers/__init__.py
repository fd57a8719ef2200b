"""Celery workers: the same `feedback_ai` task bodies, run asynchronously."""
