"""Person names: a trained NER, run only where a name could be, and filtered for short feedback.

NER is the slow part of a trained spaCy pipeline (~500 short texts/s on 2 cores). A PERSON entity
in English text starts with a title-case word, and the NER model only looks a few tokens either
side of a word, so `PersonNames` runs the pipeline's own `ner` on small windows around title-case
candidates (not "I", not a sentence-initial stop word, not inside a URL or email) and maps the
entities back. Most feedback has no candidate and skips NER entirely.

NER on short feedback misfires (product names, greetings), so a PERSON entity is kept only when
its words are name-shaped ("Sarah", "O'Brien", "Garcia-Lopez", "McDonald", "van"): all-caps
("JIRA"), camel-case ("FSDownload") and lower-case words are never names here, and entities with a
generic word ("Team", "Support", "Pay") are dropped; a leading greeting or title ("Hi", "Dr") stays
in the text. Limits: lower-case names ("sarah") are not found; a title-case product that the model
calls PERSON ("Miro") is still redacted; names in languages other than English are hit and miss.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc, Span, Token
from spacy.util import minibatch

from feedback_ai.nlp.pii import PERSON, PiiSpan, merge_spans

_LEADING = {  # may precede a name inside a PERSON entity: stripped
    *("hi", "hello", "hey", "dear", "thanks", "thank", "regards", "best", "cheers", "greetings"),
    *("mr", "mrs", "ms", "dr", "prof", "sir", "madam"),
}
_GENERIC = {  # never part of a name here: the entity is dropped ("Apple Pay", "Hi Team")
    *("team", "support", "admin", "customer", "service", "user", "pay", "app", "bank", "card"),
    *("account", "bot", "assistant", "manager", "agent", "staff", "everyone", "all", "guys"),
}
_PARTICLES = {"de", "da", "del", "della", "di", "du", "van", "von", "der", "den", "le", "la", "bin"}
_MAC = re.compile(r"(?:Mc|Mac)[A-Z][a-z]+")


def _name_shaped(token: Token) -> bool:
    text = token.text
    if len(text) < 2 or text == "I'm":
        return False
    return (token.is_title and any(c.isalpha() for c in text)) or _MAC.fullmatch(text) is not None


def is_candidate(token: Token) -> bool:
    """Could this token begin or belong to a person name?"""
    if not _name_shaped(token) or token.lower_ in _GENERIC or token.lower_ in _LEADING:
        return False
    return not (token.is_sent_start and token.lower_ in STOP_WORDS)


def clean_person(ent: Span) -> tuple[int, int] | None:
    """Char offsets of a plausible name inside a PERSON entity, or None."""
    tokens = [t for t in ent if not (t.is_punct or t.is_space)]
    while tokens and (tokens[0].lower_ in _LEADING or tokens[0].lower_ in _PARTICLES):
        tokens.pop(0)
    while tokens and tokens[-1].lower_ in _PARTICLES:
        tokens.pop()
    if not tokens or any(t.lower_ in _GENERIC for t in tokens):
        return None
    if not all(_name_shaped(t) or t.lower_ in _PARTICLES for t in tokens):
        return None
    return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)


def candidate_windows(doc: Doc, skip: Sequence[PiiSpan], width: int) -> list[tuple[int, int]]:
    """Merged token windows of `width` tokens either side of each name candidate."""
    starts = [span.start for span in skip]
    windows: list[tuple[int, int]] = []
    for token in doc:
        if not is_candidate(token):
            continue
        i = bisect.bisect_right(starts, token.idx) - 1
        if i >= 0 and skip[i].end > token.idx:
            continue  # inside an email, URL, ...
        lo, hi = max(0, token.i - width), min(len(doc), token.i + width + 1)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], hi))
        else:
            windows.append((lo, hi))
    return windows


DocsStage = Callable[[Iterable[Doc]], Iterator[Doc]]


class PersonNames:
    """spaCy component: adds PERSON spans to `doc._.<attr>` (a list of `PiiSpan`).

    `stages` run the NER on window docs, e.g. `[ner.pipe]` (or `[tok2vec.pipe, ner.pipe]` where
    the NER listens to a shared tok2vec).
    """

    def __init__(self, stages: Sequence[DocsStage], attr: str, width: int = 8) -> None:
        self.stages, self.attr, self.width = list(stages), attr, width

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in minibatch(docs, size=batch_size):
            yield from self._process(batch)

    def _process(self, docs: list[Doc]) -> list[Doc]:
        owners, windows = [], []
        for n, doc in enumerate(docs):
            found = getattr(doc._, self.attr) or []
            for lo, hi in candidate_windows(doc, found, self.width):
                owners.append((n, doc[lo:hi].start_char))
                windows.append(doc[lo:hi].as_doc())
        outputs: Iterable[Doc] = windows
        for stage in self.stages:
            outputs = stage(outputs)
        names: list[list[PiiSpan]] = [[] for _ in docs]
        for (n, offset), window in zip(owners, outputs, strict=True):
            for ent in window.ents:
                chars = clean_person(ent) if ent.label_ == PERSON else None
                if chars:
                    names[n].append(PiiSpan(chars[0] + offset, chars[1] + offset, PERSON))
        for doc, persons in zip(docs, names, strict=True):
            if persons:  # pattern spans (emails, URLs, ...) win overlaps
                setattr(doc._, self.attr, merge_spans(getattr(doc._, self.attr) or [], persons))
        return docs
