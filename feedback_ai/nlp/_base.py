"""The NLP contract: PII redaction and mention splitting, before anything is embedded or stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ProcessedText:
    text: str  # the full text with PII replaced by typed placeholders, e.g. "[EMAIL]"
    mentions: list[str]  # >= 1 redacted spans to embed (one per sentence group for long text)
    pii: dict[str, int] = field(default_factory=dict)  # redacted span counts by type


class TextProcessor(Protocol):
    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        """Redact and split a batch of texts (batched for spaCy's nlp.pipe)."""
        ...
