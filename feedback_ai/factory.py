"""Builds the default stages from `Settings` — the one place defaults are chosen."""

from __future__ import annotations

import logging

from feedback_ai.config import Settings, StoreBackend
from feedback_ai.embed._base import Embedder
from feedback_ai.nlp._base import TextProcessor
from feedback_ai.records import Records
from feedback_ai.service import FeedbackService
from feedback_ai.store._base import VectorStore

log = logging.getLogger(__name__)


def make_store(settings: Settings, dim: int) -> VectorStore:
    if settings.store_backend == StoreBackend.edge:
        from feedback_ai.store.edge import EdgeStore

        settings.vectors_dir.mkdir(parents=True, exist_ok=True)
        return EdgeStore(settings.vectors_dir, dim)
    from feedback_ai.store.qdrant import QdrantStore

    if not settings.qdrant_url:
        raise ValueError("store_backend=qdrant needs FEEDBACK_AI_QDRANT_URL (or ':memory:')")
    return QdrantStore(
        settings.qdrant_url, dim, collection=settings.collection, api_key=settings.qdrant_api_key
    )


def make_embedder(settings: Settings) -> Embedder:
    from feedback_ai.embed import make_embedder as build

    return build(settings)


def make_text_processor(settings: Settings) -> TextProcessor:
    from feedback_ai.nlp import make_text_processor as build

    return build(settings)


def build_service(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    nlp: TextProcessor | None = None,
    store: VectorStore | None = None,
    records: Records | None = None,
) -> FeedbackService:
    """Build a service; any stage passed in is used as is (tests inject fakes or shared models)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or make_embedder(settings)
    return FeedbackService(
        settings=settings,
        records=records or Records(settings.resolved_database_url),
        store=store or make_store(settings, embedder.dim),
        embedder=embedder,
        nlp=nlp or make_text_processor(settings),
    )
