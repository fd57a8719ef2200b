"""The matcher's second view: word n-gram TF-IDF and a linear SVM over the texts themselves.

Why: with a few confirmed examples per item, the dense classifier's mistakes come from the labels
self-training gives the unlabelled pool (eval/results/match_ceiling.md: 5-shot top-1 follows how
often those labels are right). A lexical model trained on the same pool labels keys on the words
the sentence embedding blurs ("freeze" vs "cancel" a card), so its mistakes differ; co-training
(Blum & Mitchell, 1998) lets each view correct the other.

Method (`LexicalView.fit`, called by `feedback_ai.link.matcher.fit_matcher` when it is given
`MatcherTexts`):
1. TF-IDF over word unigrams and bigrams (sublinear term frequency, at most `max_features` terms)
   of the pool's texts and the labelled texts (descriptions, confirmed exemplars).
2. A one-vs-rest linear SVM (liblinear, squared hinge, `svm_c`): each pool text labelled with the
   dense classifier's best class, weighted by its softmax probability; each description and
   exemplar text with weight `labelled_weight`.
3. Co-training round (`co_weight`): the pool is relabelled by the dense cosines plus `co_weight`
   x the SVM's decision values, the SVM scoring each pool text from a model fitted on the other
   half of the pool (out of fold, so it cannot just repeat the label it was trained on); the
   dense classifier takes one more self-training round on those labels and the SVM is refitted
   on its new labels.
4. A query's class score: cosine(query, w_c) + `weight` x the SVM's decision value for c.

Defaults chosen on the tuning splits only (CLINC150 val, BANKING77's held-out fifth of train;
5-shot, seeds 0-2, scratch grid over `co_weight` 0.1 / 0.2, `svm_c` 0.5 / 1, `weight` 0-0.2:
every setting with a lexical view within 0.3 points of the others, all about a point above
none). There the SVM alone is right 86-88% of the time on CLINC150 against 91-93% for the dense
classifier. On the test splits (`python -m eval.match_quality`, 5 seeds): CLINC150 5-shot
top-1 91.3% -> 91.9% (every seed up), BANKING77 84.1% -> 85.1% (before the matcher's local
re-ranking; with it, 91.5% -> 92.1% and 84.9% -> 85.5%).
Cost: CLINC150 (150 items, 15,100 pool texts) about 6 s more per fit; memory the SVM's
(classes x terms) float32 weights, 500 items x 50,000 terms = 100 MB at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

Array = np.ndarray


@dataclass(frozen=True)
class LexicalConfig:
    """Knobs of the lexical view; the defaults are the tuned ones (tuning splits only)."""

    weight: float = 0.1  # the SVM's decision value, added to the cosine at query time
    co_weight: float = 0.1  # the same when relabelling the pool for the co-training round
    svm_c: float = 0.5
    labelled_weight: float = 10.0  # a description or exemplar text vs a pool text (<= 1)
    max_features: int = 50_000
    folds: int = 2  # out-of-fold SVM scores of the pool for the co-training round


@dataclass(frozen=True)
class MatcherTexts:
    """The texts behind the matcher's vectors: one description per class, the confirmed exemplar
    texts per class (may be fewer than its exemplar vectors, e.g. a theme centroid has no text),
    and one text per pool row, in the pool's order."""

    descriptions: Sequence[str]
    exemplars: Sequence[Sequence[str]]
    pool: Sequence[str]

    def labelled(self) -> tuple[list[str], Array]:
        texts = list(self.descriptions) + [t for ex in self.exemplars for t in ex]
        y = np.concatenate(
            [
                np.arange(len(self.descriptions)),
                np.repeat(np.arange(len(self.exemplars)), [len(e) for e in self.exemplars]),
            ]
        )
        return texts, y.astype(np.int64)


@dataclass
class LexicalView:
    """A fitted TF-IDF vectoriser and one-vs-rest SVM weights, stored term-major: `terms`
    (terms, classes) float32, C-contiguous, so a query reads only the rows of its own terms
    (a class-major matrix would be copied whole, 100 MB at 500 classes, on every call)."""

    vectorizer: TfidfVectorizer
    terms: Array
    intercept: Array
    weight: float

    def decision(self, texts: Sequence[str]) -> Array:
        """(n, classes): the SVM's decision values."""
        return self.decision_rows(self.vectorizer.transform(list(texts)))

    def decision_rows(self, x: Any) -> Array:
        """The same for rows already vectorised (a scipy sparse matrix)."""
        return np.asarray(x @ self.terms, dtype=np.float32) + self.intercept

    def scores(self, texts: Sequence[str]) -> Array:
        """(n, classes): what the matcher adds to its cosines."""
        return self.weight * self.decision(texts)


class Lexical:
    """Fits `LexicalView`s over one vocabulary: the pool's and the labelled texts."""

    def __init__(self, texts: MatcherTexts, n_classes: int, config: LexicalConfig) -> None:
        if len(texts.descriptions) != n_classes or len(texts.exemplars) != n_classes:
            raise ValueError("MatcherTexts needs one description and one exemplar list per class")
        self.config = config
        self.n_classes = n_classes
        labelled, self.labelled_y = texts.labelled()
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2),
            sublinear_tf=True,
            max_features=config.max_features,
            dtype=np.float32,  # as the SVM weights: a float64 query would copy them to match
        )
        self.vectorizer.fit([*texts.pool, *labelled])
        self.pool_x = self.vectorizer.transform(list(texts.pool))
        self.labelled_x = self.vectorizer.transform(labelled)

    def fit(self, labels: Array, weights: Array, rows: Array | None = None) -> LexicalView:
        """An SVM on the pool rows `rows` (all if None) labelled `labels` with sample `weights`
        (aligned with those rows), plus every labelled text."""
        from scipy import sparse

        pool_x = self.pool_x if rows is None else self.pool_x[rows]
        x = sparse.vstack([pool_x, self.labelled_x]).tocsr()
        y = np.concatenate([labels, self.labelled_y])
        w = np.concatenate([weights, np.full(len(self.labelled_y), self.config.labelled_weight)])
        svm = LinearSVC(C=self.config.svm_c)
        svm.fit(x, y, sample_weight=w)
        coef = np.zeros((self.n_classes, x.shape[1]), np.float32)
        intercept = np.full(self.n_classes, -1.0, np.float32)  # a class it never saw: "not it"
        if len(svm.classes_) == 2:  # liblinear keeps one row for two classes: +class 1
            coef[svm.classes_] = np.vstack([-svm.coef_[0], svm.coef_[0]])
            intercept[svm.classes_] = [-svm.intercept_[0], svm.intercept_[0]]
        else:
            coef[svm.classes_] = svm.coef_
            intercept[svm.classes_] = svm.intercept_
        terms = np.ascontiguousarray(coef.T)
        return LexicalView(self.vectorizer, terms, intercept, self.config.weight)

    def out_of_fold(self, labels: Array, weights: Array, seed: int) -> Array:
        """(pool, classes): each pool text's decision values from an SVM fitted without it."""
        n = self.pool_x.shape[0]
        fold = np.random.default_rng(seed).permutation(n) % self.config.folds
        out = np.zeros((n, self.n_classes), np.float32)
        for f in range(self.config.folds):
            train, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            view = self.fit(labels[train], weights[train], train)
            out[held] = view.decision_rows(self.pool_x[held])
        return out
