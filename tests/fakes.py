"""Deterministic fakes for fast unit tests. The real model and spaCy are tested elsewhere."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from feedback_ai.embed._base import Embedder
from feedback_ai.nlp._base import ProcessedText

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder(Embedder):
    """Bag of hashed words: texts sharing words are close; same text, same vector."""

    name = "hash"
    dim = 64

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[row, h % self.dim] += 1.0
            out[row, 0] += 1e-3  # never all-zero
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


class PassthroughNLP:
    """One mention per text; '!' splits mentions; 'BOOM' fails the item."""

    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        out = []
        for text in texts:
            if "BOOM" in text:
                raise ValueError("cannot process this text")
            parts = [p.strip() for p in text.split("!") if p.strip()] or [text]
            out.append(ProcessedText(text=text, mentions=parts, pii={}))
        return out
