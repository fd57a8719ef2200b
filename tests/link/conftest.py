"""Link test data: real CLINC150 vectors of a handful of intents, embedded once and cached.

Vectors come from `eval.labelled` (the product's default embedder, cached under eval/cache/),
so the tests that use them load the model on a cold cache and are marked slow."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest

# Ten intents, four confusable pairs among them.
CLINC_INTENTS = (
    "pto_balance",
    "pto_used",
    "insurance",
    "insurance_change",
    "user_name",
    "what_is_your_name",
    "shopping_list",
    "shopping_list_update",
    "weather",
    "alarm",
)


@dataclass(frozen=True)
class Labelled:
    x: np.ndarray
    y: np.ndarray  # index into CLINC_INTENTS, -1 for out of scope
    texts: tuple[str, ...] = ()  # one per row


@dataclass(frozen=True)
class SmallClinc:
    descriptions: np.ndarray
    train: Labelled  # 100 per intent: the pool and the exemplar source
    val: Labelled  # 20 per intent + 100 out of scope
    test: Labelled  # 30 per intent + 150 out of scope

    def exemplar_rows(self, k: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        rows = [np.flatnonzero(self.train.y == c) for c in range(len(CLINC_INTENTS))]
        return [rng.choice(r, k, replace=False) for r in rows]

    def exemplars(self, k: int, seed: int) -> list[np.ndarray]:
        return [self.train.x[r] for r in self.exemplar_rows(k, seed)]


def _split(names: tuple[str, ...], oos: str | None, oos_n: int = 0) -> Labelled:
    from eval import labelled as L

    index = {n: i for i, n in enumerate(CLINC_INTENTS)}
    texts, y = [], []
    for name in names:
        split = L.clinc150(name)
        for t, lab in zip(split.texts, split.labels, strict=True):
            if lab in index:
                texts.append(t)
                y.append(index[lab])
    if oos is not None:
        texts += L.clinc150(oos).texts[:oos_n]
        y += [-1] * oos_n
    return Labelled(L.embed(texts), np.array(y), tuple(texts))


@cache
def small_clinc() -> SmallClinc:
    from eval import labelled as L
    from feedback_ai.link.matcher import label_text

    desc = L.embed([label_text(n) for n in CLINC_INTENTS])
    return SmallClinc(
        desc,
        _split(("train",), None),
        _split(("val",), "oos_val", 100),
        _split(("test",), "oos_test", 150),
    )


@pytest.fixture
def clinc(shared_data: Path) -> SmallClinc:
    return small_clinc()
