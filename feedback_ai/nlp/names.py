"""Person names: a trained NER, run only where a name could be, and filtered for short feedback.

NER is the slow part of a trained spaCy pipeline (~300-500 short texts/s on 2 cores), and on short
product feedback its PERSON label misfires on products and greetings ("Mastercard", "Jira", "Hi
Team"). So a PERSON entity is kept only when
- its words are name-shaped: title-case letters ("Sarah", "O'Brien", "Garcia-Lopez", "McDonald",
  particles such as "van"); never all-caps ("JIRA"), camel-case ("FSDownload"), lower-case, digits;
- it has no generic word ("Team", "Support", "Pay"); a leading greeting or title ("Hi", "Dr") is
  left in the text;
- it has two or more words, or a lone word sits in a name context: a greeting, title, "my name
  is", "cc", "talked to" ... before it, or "here", "said", "from" ... after it.
Because of that, NER only needs to run near a name-shaped word that has a name-shaped neighbour or
a name context, and the NER model only looks a few tokens either side of a word: `PersonNames`
runs the pipeline's own `ner` on small windows around such words and maps the entities back. Most
feedback has none and skips NER entirely.

Limits: a lone first name without context ("Sarah was great") and lower-case names ("sarah
connor") are not redacted; title-case technical or product phrases the model calls PERSON ("Guava
Preconditions", "Russian Ruble") are; names in other languages are hit and miss.
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
    *("mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam"),
}
_GENERIC = {  # never part of a name here: the entity is dropped ("Apple Pay", "Hi Team")
    *("team", "support", "admin", "customer", "service", "user", "pay", "app", "bank", "card"),
    *("account", "bot", "assistant", "manager", "agent", "staff", "everyone", "all", "guys"),
}
_PARTICLES = {"de", "da", "del", "della", "di", "du", "van", "von", "der", "den", "le", "la", "bin"}
# A lone word tagged PERSON ("Mastercard", "Jira", "Visa") is a name only in a name context.
_CUE_BEFORE = _LEADING | {
    *("sincerely", "cc", "ask", "asked", "tell", "told", "called", "named", "rep", "agent"),
    *("representative", "colleague", "manager", "boss", "husband", "wife", "partner", "friend"),
    *("son", "daughter", "mom", "dad", "mother", "father", "brother", "sister", "spoke", "talked"),
    *("chatted", "emailed", "contacted", "met", "thx"),
}
_CUE_BEFORE_PAIRS = {("name", "is"), ("i", "'m"), ("i", "am"), ("this", "is"), ("it", "'s")}
_CUE_AFTER = {"here", "said", "says", "told", "wrote", "mentioned", "replied", "responded"}
_CUE_AFTER |= {"helped", "explained", "suggested", "asked", "from"}
_NAME_CHARS = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_JOINERS = {"-", "'", "\u2019"}
_SENTENCE_ENDS = {".", "!", "?", "...", "\u2026"}
_MAC = re.compile(r"(?:Mc|Mac)[A-Z][a-z]+")


def _name_shaped(token: Token) -> bool:
    """Title-case letters ("Sarah", "O'Brien", "José", "McDonald"); not "JIRA", "C++", "FSDown"."""
    text = token.text
    if len(text) < 2 or not text[0].isupper() or not _NAME_CHARS.fullmatch(text):
        return False
    return text.istitle() or _MAC.fullmatch(text) is not None


def is_candidate(token: Token) -> bool:
    """Could a kept PERSON span contain this token? A name-shaped word (not "I", not a generic
    word, not a sentence-initial stop word) next to another one, or in a name context."""
    if not _name_shaped(token) or token.lower_ in _GENERIC or token.lower_ in _LEADING:
        return False
    if token.lower_ in STOP_WORDS and starts_sentence(token):
        return False
    return _has_name_neighbour(token) or _in_name_context(token)


def starts_sentence(token: Token) -> bool:
    """The sentence annotation where the doc has one; short docs have none (see
    `spacy_nlp.SentenceGate`): then the first token, or one after a full stop, ! or ?."""
    if token.doc.has_annotation("SENT_START"):
        return bool(token.is_sent_start)
    return token.i == 0 or token.doc[token.i - 1].text in _SENTENCE_ENDS


def _has_name_neighbour(token: Token) -> bool:
    doc = token.doc
    for step in (-1, 1):
        i = token.i + step
        if 0 <= i < len(doc) and (doc[i].text in _JOINERS or doc[i].lower_ in _PARTICLES):
            i += step  # "Garcia - Lopez", "Ludwig van Beethoven"
        if 0 <= i < len(doc) and _name_shaped(doc[i]):
            return True
    return False


def _in_name_context(token: Token) -> bool:
    """A greeting, title, "my name is", "talked to" ... before, or "here", "said" ... after."""
    doc = token.doc
    before = [t.lower_ for t in doc[max(0, token.i - 4) : token.i] if not t.is_punct]
    after = [t.lower_ for t in doc[token.i + 1 : token.i + 3] if not t.is_punct]
    if before and (before[-1] in _CUE_BEFORE or tuple(before[-2:]) in _CUE_BEFORE_PAIRS):
        return True
    return bool(after) and after[0] in _CUE_AFTER


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
    if len(tokens) == 1 and not _in_name_context(tokens[0]):
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
