"""store: the vector store stage. Every Qdrant call of the project lives in this package.

`VectorStore` (in `_base.py`) is the contract; `EdgeStore` (embedded engine, local disk) and
`QdrantStore` (Qdrant server via qdrant-client) implement it. The backends are imported on first
use, so importing the contract does not load either engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feedback_ai.store._base import MentionPoint, ScoredMention, SearchFilter, VectorStore

if TYPE_CHECKING:
    from feedback_ai.store.edge import EdgeStore
    from feedback_ai.store.qdrant import QdrantStore

__all__ = [
    "EdgeStore",
    "MentionPoint",
    "QdrantStore",
    "ScoredMention",
    "SearchFilter",
    "VectorStore",
]

_BACKENDS = {"EdgeStore": "feedback_ai.store.edge", "QdrantStore": "feedback_ai.store.qdrant"}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        import importlib

        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
