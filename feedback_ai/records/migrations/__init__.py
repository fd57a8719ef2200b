"""Alembic migrations of the system of record (run by `feedback_ai.records.migrate`)."""
