"""Builds the default stages from `Settings` — the one place defaults are chosen."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from feedback_ai.config import Settings, StoreBackend
from feedback_ai.embed._base import Embedder
from feedback_ai.nlp._base import ProcessedText, TextProcessor
from feedback_ai.records import SCOPES, Records
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


class LazyTextProcessor:
    """Loads spaCy on the first `process()`: readers (search, the distributed API) never pay."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._inner: TextProcessor | None = None

    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        if self._inner is None:
            self._inner = make_text_processor(self._settings)
        return self._inner.process(texts)


def build_service(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    nlp: TextProcessor | None = None,
    store: VectorStore | None = None,
    records: Records | None = None,
) -> FeedbackService:
    """Build a service; any stage passed in is used as is (tests inject fakes or shared models).
    Sets the process's GIL switch interval (`Settings.gil_switch_interval_ms`)."""
    from feedback_ai.nlp.sentiment import VaderSentiment
    from feedback_ai.themes.service import ThemeService

    if settings.gil_switch_interval_ms:
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or make_embedder(settings)
    records = records or Records(settings.resolved_database_url, settings.auth_cache_s)
    store = store or make_store(settings, embedder.dim)
    return FeedbackService(
        settings=settings,
        records=records,
        store=store,
        embedder=embedder,
        nlp=nlp or LazyTextProcessor(settings),
        sentiment=VaderSentiment(),
        themes=ThemeService(settings, records, store, embedder),
    )


DEFAULT_WORKSPACE = "default"


def bootstrap(settings: Settings, records: Records) -> str | None:
    """Create the `default` workspace and, on first start, an admin key for it.

    The new key is written once to `<data_dir>/default_admin_key` (mode 0600) and returned, so
    the caller can print how to get it; later starts return None. `bootstrap_key` in settings
    registers that key instead (deployments set it from a secret)."""
    records.ensure_workspace(DEFAULT_WORKSPACE)
    if settings.bootstrap_key:
        records.add_key(DEFAULT_WORKSPACE, settings.bootstrap_key, SCOPES, "bootstrap")
        return None
    if records.count_keys(DEFAULT_WORKSPACE):
        return None
    key = records.create_key(DEFAULT_WORKSPACE, SCOPES, "default admin")
    path = default_key_path(settings)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def default_key_path(settings: Settings) -> Path:
    return settings.data_dir / "default_admin_key"
