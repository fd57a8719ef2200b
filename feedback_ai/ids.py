"""Deterministic ids, so a replayed ingest writes the same rows and points.

item id  = UUID5(NAMESPACE, "item:{workspace}:{source}:{external_id}")  when external_id is given,
           UUID5(NAMESPACE, "hash:{workspace}:{source}:{sha256(text)}")   otherwise;
point id = UUID5(NAMESPACE, "mention:{item_id}:{index}");
theme point id = UUID5(NAMESPACE, "{kind}:{workspace}:{id}"), kind "theme" or "roadmap".
"""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("5b0f4a52-9d1e-4c7b-9a57-0f6c1d2e3a44")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def item_id(workspace: str, source: str, external_id: str | None, text: str) -> str:
    if external_id:
        key = f"item:{workspace}:{source}:{external_id}"
    else:
        key = f"hash:{workspace}:{source}:{content_hash(text)}"
    return str(uuid.uuid5(NAMESPACE, key))


def mention_id(item_id: str, index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"mention:{item_id}:{index}"))


def theme_point_id(workspace: str, theme_id: str, kind: str = "theme") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{workspace}:{theme_id}"))
