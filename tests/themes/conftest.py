"""Theme test helpers: a feedback + theme service pair over the same stores, ingest, purity.

The data and model fixtures (`banking`, `real_embedder`, `theme_settings`, `kmeans`) live in
tests/conftest.py: the API tests use them too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from feedback_ai.config import Settings
from tests.conftest import EXTRA_INTENT, INTENTS, kmeans

__all__ = ["EXTRA_INTENT", "INTENTS", "kmeans"]


@pytest.fixture
def stack(theme_settings: Settings, real_embedder: Any) -> Iterator[Any]:
    """A feedback service (real embedder, no spaCy) and a theme service over the same stores."""
    from feedback_ai.factory import build_service
    from tests.fakes import PassthroughNLP

    feedback = build_service(theme_settings, embedder=real_embedder, nlp=PassthroughNLP())
    feedback.records.ensure_workspace("acme")
    feedback.records.ensure_workspace("globex")
    themes = feedback.themes
    themes._components = kmeans(8)
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
