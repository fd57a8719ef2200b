"""feedback_ai: feedback intelligence — ingest, embed, store, search (core library).

This package has no FastAPI or Celery imports: `api/` serves it and `workers/` runs it.
"""

__version__ = "0.1.0"
