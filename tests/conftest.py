from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


# --- real data and the real model, shared by the theme, API and link tests

INTENTS = (
    "card_arrival",
    "exchange_rate",
    "lost_or_stolen_card",
    "pin_blocked",
    "age_limit",
    "cancel_transfer",
    "top_up_failed",
    "atm_support",
)
EXTRA_INTENT = "terminate_account"
PER_INTENT = 40


@pytest.fixture(scope="session")
def banking() -> dict[str, list[str]]:
    """Intent -> its first PER_INTENT training queries."""
    path = SHARED_DATA / "banking77" / "train.csv"
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    out: dict[str, list[str]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            texts = out.setdefault(row["category"], [])
            if len(texts) < PER_INTENT:
                texts.append(row["text"])
    return out


@pytest.fixture(scope="session")
def real_embedder() -> Any:
    from feedback_ai.embed import make_embedder

    return make_embedder(Settings(models_dir=Path("models")))


def kmeans(k: int) -> Callable[[int, int], tuple[Any, Any]]:
    """BERTopic stages for tests: no reduction, k-means with k clusters."""

    def components(n: int, seed: int) -> tuple[Any, Any]:
        from bertopic.dimensionality import BaseDimensionalityReduction
        from sklearn.cluster import KMeans

        return BaseDimensionalityReduction(), KMeans(k, random_state=seed, n_init=10)

    return components


@pytest.fixture
def theme_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        store_backend=StoreBackend.qdrant,
        qdrant_url=":memory:",
        models_dir=Path("models"),
        spacy_model="",  # blank: keywords unlemmatised, labels from keywords (fast)
        theme_min_mentions=20,
        emerging_min_items=8,
    )
