"""Real data for theme tests: BANKING77 queries of a few intents, embedded once per session by
the real default embedder; stages injected so refits run in seconds (k-means, seeded)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedback_ai.config import Settings, StoreBackend
from tests.conftest import SHARED_DATA

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


@pytest.fixture
def stack(theme_settings: Settings, real_embedder: Any) -> Iterator[Any]:
    """A feedback service (real embedder, no spaCy) and a theme service over the same stores."""
    from feedback_ai.factory import build_service
    from feedback_ai.themes.service import ThemeService
    from tests.fakes import PassthroughNLP

    feedback = build_service(theme_settings, embedder=real_embedder, nlp=PassthroughNLP())
    feedback.records.ensure_workspace("acme")
    feedback.records.ensure_workspace("globex")
    themes = ThemeService(
        theme_settings, feedback.records, feedback.store, real_embedder, components=kmeans(8)
    )
    yield feedback, themes
    feedback.close()


def ingest(
    feedback: Any, workspace: str, texts: list[str], source: str = "test", **fields: Any
) -> list[str]:
    """Ingest synchronously; returns the item ids in order."""
    from feedback_ai import ids

    items = [{"text": t, "source": source, **fields} for t in texts]
    feedback.submit(workspace, items, lambda job, batch: feedback.process(job, batch))
    return [ids.item_id(workspace, source, None, t.strip()) for t in texts]


def gold(banking: dict[str, list[str]], intents: tuple[str, ...] = INTENTS) -> dict[str, str]:
    return {t: intent for intent in intents for t in banking[intent]}


def purity(themes: Any, workspace: str, item_intent: dict[str, str]) -> float:
    """Share of items whose theme's majority intent is their own."""
    from collections import Counter

    good = total = 0
    for theme in themes.db.themes(workspace):
        intents = Counter(item_intent[i] for i in themes.db.theme_items(workspace, theme.id))
        good += intents.most_common(1)[0][1] if intents else 0
        total += sum(intents.values())
    return good / max(total, 1)


def vectors_of(texts: list[str], embedder: Any) -> np.ndarray:
    return np.asarray(embedder.embed(texts), dtype=np.float32)
