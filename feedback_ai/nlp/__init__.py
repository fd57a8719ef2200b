"""The NLP stage: PII redaction and mention splitting (contract in `_base.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_ai.nlp._base import ProcessedText, TextProcessor

if TYPE_CHECKING:
    from feedback_ai.config import Settings

__all__ = ["ProcessedText", "TextProcessor", "make_text_processor"]


def make_text_processor(settings: Settings) -> TextProcessor:
    """The configured processor; spaCy loads here (once per process and configuration)."""
    from feedback_ai.nlp.spacy_nlp import SpacyTextProcessor

    return SpacyTextProcessor(
        redact_pii=settings.redact_pii,
        redact_person_names=settings.redact_person_names,
        model=settings.spacy_model or None,
        mention_min_chars=settings.mention_min_chars,
    )
