from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests use their own Redis database, set before workers.celery_app reads Settings at import.
os.environ.setdefault("FEEDBACK_AI_BROKER_URL", "redis://127.0.0.1:6379/15")

from feedback_ai.config import Settings, StoreBackend

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fast settings: qdrant-client in-memory store, SQLite under tmp_path."""
    return Settings(
        data_dir=tmp_path,
        store_backend=StoreBackend.qdrant,
        qdrant_url=":memory:",
        task_batch_size=4,
        models_dir=Path("models"),
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def fake_service(settings: Settings) -> Iterator:
    from feedback_ai.factory import build_service
    from tests.fakes import HashEmbedder, PassthroughNLP

    service = build_service(settings, embedder=HashEmbedder(), nlp=PassthroughNLP())
    yield service
    service.close()
