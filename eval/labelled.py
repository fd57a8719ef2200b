"""Labelled intent datasets from ../shared/data (BANKING77, CLINC150) and their embeddings.

Embeddings come from the product's default embedder (the variant `auto` picks, recorded in
`models/registry.json`) and are cached under eval/cache/ by model, variant and corpus hash, so
every evaluation embeds a corpus once.

Splits (as published; metrics are reported on `test`, nothing is tuned on it):
- banking77: train (10,003), test (3,080); 77 intents.
- clinc150: train (15,000), val (3,000), test (4,500) in scope, 150 intents; out-of-scope
  `oos_train` (100), `oos_val` (100), `oos_test` (1,000), labelled `oos`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from eval.corpus import SHARED, cache_key, embeddings

OOS = "oos"


@dataclass(frozen=True)
class Split:
    dataset: str
    name: str
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def banking77(split: str) -> Split:
    with (SHARED / "banking77" / f"{split}.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return Split("banking77", split, [r["text"] for r in rows], [r["category"] for r in rows])


@cache
def _clinc() -> dict[str, list[list[str]]]:
    return json.loads((SHARED / "clinc150" / "data_full.json").read_text())  # type: ignore[no-any-return]


def clinc150(split: str) -> Split:
    """`train`, `val`, `test` (in scope) or `oos_train`, `oos_val`, `oos_test` (label `oos`)."""
    rows = _clinc()[split]
    return Split("clinc150", split, [t for t, _ in rows], [label for _, label in rows])


def intent_names(dataset: str) -> list[str]:
    if dataset == "banking77":
        return json.loads((SHARED / "banking77" / "categories.json").read_text())  # type: ignore[no-any-return]
    domains = json.loads((SHARED / "clinc150" / "domains.json").read_text())
    return sorted({name for names in domains.values() for name in names})


def load(dataset: str, split: str) -> Split:
    return banking77(split) if dataset == "banking77" else clinc150(split)


@cache
def default_embedder():  # type: ignore[no-untyped-def]
    from feedback_ai.config import Settings
    from feedback_ai.embed import make_embedder

    return make_embedder(Settings())


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 vectors of `texts` from the default embedder, cached on disk."""
    embedder = default_embedder()
    return embeddings(texts, cache_key(embedder), embedder.embed)


def embed_split(split: Split) -> np.ndarray:
    return embed(split.texts)
