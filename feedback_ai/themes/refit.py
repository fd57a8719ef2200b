"""A refit as a plan: stored mentions -> clusters -> registry match -> themes, rows and pool.

`plan()` reads nothing and writes nothing: it takes the corpus and the registry's current
state and returns what the registry should become (`Plan`). `ThemeService.refit` loads the
inputs and commits the plan in one transaction, so a failed refit changes nothing.

Human edits survive because the plan honours them: a pinned label is kept (at commit), a noise
theme stays noise, a person's merge folds look-alike clusters into its target (`Ghost`), a
person's split keeps its parts apart (`SplitGroup`), and items a person placed keep their place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from feedback_ai.records.theme_repo import Event, ThemeState
from feedback_ai.themes import fit as fitting
from feedback_ai.themes import registry
from feedback_ai.themes.labels import LabelNLP, label, quotes

Progress = Callable[[str, int, int], None]
LEMMA_SAMPLE = 1_000  # texts spaCy lemmatises to build the keyword lemma table
LABEL_QUOTES = 6  # mentions per theme whose noun phrases propose its label


@dataclass
class Corpus:
    """Every mention of a workspace, as the store holds it."""

    point_ids: list[str]
    item_ids: list[str]
    mention_index: np.ndarray
    texts: list[str]
    vectors: np.ndarray
    sentiment: np.ndarray  # nan where unknown

    def __len__(self) -> int:
        return len(self.point_ids)


@dataclass(frozen=True)
class SplitGroup:
    """Themes a person split apart, with their centroids at the time: kept apart."""

    children: dict[str, np.ndarray]


@dataclass
class Current:
    """The registry before the refit."""

    known: list[registry.Known]  # live themes: centroid + member item ids
    noise: set[str] = field(default_factory=set)
    ghosts: list[registry.Ghost] = field(default_factory=list)
    splits: list[SplitGroup] = field(default_factory=list)
    manual: dict[str, list[str]] = field(default_factory=dict)  # item -> themes a person chose


@dataclass
class Options:
    sample_size: int = 30_000  # as Settings.theme_fit_sample and cluster.SAMPLE_SIZE
    seed: int = 42
    match_threshold: float = registry.DEFAULT_THRESHOLD
    overlap: float = registry.DEFAULT_OVERLAP
    assign_quantile: float = 0.05  # live threshold: this quantile of members' own similarity
    min_mentions: int = 20


@dataclass
class Plan:
    states: list[ThemeState]
    events: list[Event]
    theme_rows: np.ndarray  # per corpus row: index into `theme_ids`, or -1 (pool)
    similarity: np.ndarray  # per corpus row: cosine to its theme's centroid
    theme_ids: list[str]
    centroids: np.ndarray  # per theme id (unit rows)
    assign_threshold: float
    stats: dict[str, Any]
    model: Any = None  # the fitted BERTopic model


def plan(
    corpus: Corpus,
    current: Current,
    fit: Callable[..., fitting.Fitted],
    nlp: LabelNLP,
    mint: Callable[[], str],
    options: Options,
    progress: Progress = lambda *_: None,
) -> Plan:
    progress("lemmas", 0, len(corpus))
    lemmas = nlp.lemma_table(_spread(corpus.texts, LEMMA_SAMPLE))
    progress("clustering", 0, len(corpus))
    fitted = fit(corpus.texts, corpus.vectors, lemmas=lemmas)
    progress("assigning", 0, len(corpus))
    labels, sims, threshold = _assign_all(corpus.vectors, fitted, options.assign_quantile)
    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    cents = fitting.centroids(corpus.vectors, labels, k)
    progress("matching", 0, k)
    members = _members(labels, corpus.item_ids, k)
    outcome = registry.match(
        cents,
        members,
        current.known,
        mint,
        current.ghosts,
        options.match_threshold,
        options.overlap,
    )
    row_theme = np.array([*outcome.theme_of, ""], dtype=object)[labels]  # -1 -> ""
    _keep_splits(row_theme, corpus.vectors, outcome, current.splits)
    theme_ids = sorted({t for t in row_theme if t})
    index = {t: i for i, t in enumerate(theme_ids)}
    rows = np.array([index.get(t, -1) for t in row_theme], dtype=np.int64)
    final = fitting.centroids(corpus.vectors, rows, len(theme_ids))
    sims = _own_similarity(corpus.vectors, rows, final, sims)
    progress("labelling", 0, len(theme_ids))
    states = _states(corpus, rows, final, theme_ids, outcome, fitted, labels, current, nlp)
    return Plan(
        states=states,
        events=_events(outcome),
        theme_rows=rows,
        similarity=sims,
        theme_ids=theme_ids,
        centroids=final,
        assign_threshold=threshold,
        model=fitted.model,
        stats={
            "mentions": len(corpus),
            "fit_sample": len(fitted.sample),
            "clusters": k,
            "themes": len(theme_ids),
            "pool": int((rows < 0).sum()),
            "kept": len(outcome.kept),
            "created": len(outcome.created),
            "merged": len(outcome.merged),
            "split": len(outcome.split),
            "retired": len(outcome.retired),
            "assign_threshold": round(threshold, 4),
        },
    )


def _spread(texts: Sequence[str], n: int) -> list[str]:
    step = max(1, len(texts) // n)
    return list(texts[::step][:n])


def _assign_all(
    vectors: np.ndarray, fitted: fitting.Fitted, quantile: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample members keep their cluster; every other mention joins its nearest centroid if it
    is at least as similar as the `quantile` of members are to their own centroid."""
    labels = fitted.labels.copy()
    k = int(labels.max()) + 1 if labels.max() >= 0 else 0
    if k == 0:
        return labels, np.zeros(len(labels), dtype=np.float32), 1.0
    cents = fitting.centroids(vectors, labels, k)
    member = np.flatnonzero(labels >= 0)
    own = fitting.own_similarity(vectors, cents, labels, member)
    threshold = float(np.quantile(own, quantile))
    rest = np.flatnonzero(labels < 0)
    best, sims = fitting.nearest(vectors, cents, threshold, rows=rest)
    labels[rest] = best
    all_sims = np.zeros(len(labels), dtype=np.float32)
    all_sims[member], all_sims[rest] = own, sims
    return labels, all_sims, threshold


def _members(labels: np.ndarray, item_ids: Sequence[str], k: int) -> list[frozenset[str]]:
    groups: list[set[str]] = [set() for _ in range(k)]
    for row in np.flatnonzero(labels >= 0):
        groups[int(labels[row])].add(item_ids[int(row)])
    return [frozenset(g) for g in groups]


def _keep_splits(
    row_theme: np.ndarray,
    vectors: np.ndarray,
    outcome: registry.Outcome,
    groups: Sequence[SplitGroup],
) -> None:
    """A person's split: where the refit put two or more parts into one theme again, share
    that theme's mentions out among those parts by nearest (split-time) centroid."""
    for group in groups:
        absorbed = defaultdict(list)
        for child in group.children:
            host = outcome.merged.get(child) or (child if child in outcome.kept else None)
            if host is not None:
                absorbed[host].append(child)
        for host, absorbed_parts in absorbed.items():
            if host not in group.children:  # merged into a theme outside the split: leave it
                continue
            parts = sorted(set(absorbed_parts) | {host})
            if len(parts) < 2:
                continue
            rows = np.flatnonzero(row_theme == host)
            cents = np.stack([group.children[p] for p in parts])
            row_theme[rows] = np.array(parts, dtype=object)[np.argmax(vectors[rows] @ cents.T, 1)]
            for p in parts:
                outcome.merged.pop(p, None)
                if p in outcome.retired:
                    outcome.retired.remove(p)


def _own_similarity(
    vectors: np.ndarray, rows: np.ndarray, cents: np.ndarray, fallback: np.ndarray
) -> np.ndarray:
    sims = fallback.copy()
    assigned = np.flatnonzero(rows >= 0)
    sims[assigned] = fitting.own_similarity(vectors, cents, rows, assigned)
    return sims


def _states(
    corpus: Corpus,
    rows: np.ndarray,
    cents: np.ndarray,
    theme_ids: list[str],
    outcome: registry.Outcome,
    fitted: fitting.Fitted,
    labels: np.ndarray,
    current: Current,
    nlp: LabelNLP,
) -> list[ThemeState]:
    split_from = outcome.split
    states = []
    reps: list[list[str]] = []
    kws_all: list[list[str]] = []
    for t, theme_id in enumerate(theme_ids):
        idx = np.flatnonzero(rows == t)
        cluster = np.bincount(labels[idx][labels[idx] >= 0]).argmax() if len(idx) else -1
        kws = fitted.keywords.get(int(cluster), [])
        q = quotes(
            corpus.vectors[idx],
            cents[t],
            [corpus.item_ids[i] for i in idx],
            corpus.mention_index[idx].tolist(),
            [corpus.texts[i] for i in idx],
            k=LABEL_QUOTES,
        )
        reps.append([x.text for x in q])
        kws_all.append(kws)
        states.append(
            ThemeState(
                theme_id=theme_id,
                status="noise" if theme_id in current.noise else "active",
                keywords=kws,
                quotes=[vars(x) for x in q[:3]],
                items=len({corpus.item_ids[i] for i in idx}),
                mentions=len(idx),
                origin="split" if theme_id in split_from else "refit",
                split_from=split_from.get(theme_id),
            )
        )
    phrases = nlp.noun_phrases([r for rep in reps for r in rep])
    cursor = 0
    for state, rep, kws in zip(states, reps, kws_all, strict=True):
        state.label = label(kws, phrases[cursor : cursor + len(rep)])
        cursor += len(rep)
    gone = [ThemeState(t, status="merged", merged_into=into) for t, into in outcome.merged.items()]
    gone += [ThemeState(t, status="retired") for t in outcome.retired]
    return states + gone


def _events(outcome: registry.Outcome) -> list[Event]:
    events = [Event(t, "created") for t in outcome.created if t not in outcome.split]
    events += [Event(new, "split", old) for new, old in outcome.split.items()]
    events += [Event(old, "merged", into) for old, into in outcome.merged.items()]
    events += [Event(t, "retired") for t in outcome.retired]
    events += [Event(into, "folded", detail={"cluster": c}) for c, into in outcome.folded.items()]
    return events


def now() -> datetime:
    return datetime.now(UTC)
