"""Stable theme ids: a refit's clusters matched onto the themes that already exist.

Pure functions over vectors and member sets; persistence lives in `feedback_ai.themes.service`.

Matching, in order:
1. Optimal assignment (Hungarian, `scipy.optimize.linear_sum_assignment`) of new clusters to
   known themes on centroid cosine similarity; a pair is kept only at `similarity >= threshold`.
   A kept pair means the theme keeps its id.
2. Drift: a cluster and a theme still unpaired whose members mostly coincide (each holds at
   least `overlap` of the other's members) are paired too, however far their centroids moved.
3. Folds: an unpaired cluster near (>= threshold) a theme a person merged into another (a
   `Ghost`) joins that merge's target: a person's merge survives refits.
4. Lineage: an unpaired cluster holding at least `overlap` of its members from one paired theme
   is a split of it (`split_from`); an unpaired theme whose members went, for at least
   `overlap`, into one cluster was merged into that cluster's theme (`merged_into`).
   Other unpaired clusters are new themes; other unpaired themes are retired.

Members are mention ids (a refit re-clusters the same mentions, so overlaps are exact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

DEFAULT_THRESHOLD = 0.8
DEFAULT_OVERLAP = 0.5


@dataclass(frozen=True)
class Known:
    """A theme as it is now: its id, centroid (unit vector) and member mention ids."""

    theme_id: str
    centroid: np.ndarray
    members: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Ghost:
    """The centroid a theme had when a person merged it `into` another theme."""

    centroid: np.ndarray
    into: str


@dataclass
class Outcome:
    """Per new cluster, the theme id it takes; and what happened to every known theme."""

    theme_of: list[str]
    kept: dict[str, int] = field(default_factory=dict)  # theme id -> cluster
    created: list[str] = field(default_factory=list)
    split: dict[str, str] = field(default_factory=dict)  # new id -> split from
    merged: dict[str, str] = field(default_factory=dict)  # old id -> merged into
    folded: dict[int, str] = field(default_factory=dict)  # cluster -> target (a person's merge)
    retired: list[str] = field(default_factory=list)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix of the rows of `a` and `b` (rows need not be unit length)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray(a @ b.T, dtype=np.float32)


def overlaps(members: Sequence[frozenset[str]], known: Sequence[Known]) -> np.ndarray:
    """Shared members of every (cluster, known theme) pair."""
    owner = {m: j for j, k in enumerate(known) for m in k.members}
    out = np.zeros((len(members), len(known)), dtype=np.int64)
    for i, cluster in enumerate(members):
        for m in cluster:
            j = owner.get(m)
            if j is not None:
                out[i, j] += 1
    return out


def match(
    centroids: np.ndarray,
    members: Sequence[frozenset[str]],
    known: Sequence[Known],
    mint: Callable[[], str],
    ghosts: Sequence[Ghost] = (),
    threshold: float = DEFAULT_THRESHOLD,
    overlap: float = DEFAULT_OVERLAP,
) -> Outcome:
    """Map new clusters (`centroids`, `members`) onto `known` themes; `mint()` makes new ids."""
    sim = cosine(centroids, np.stack([k.centroid for k in known]) if known else centroids[:0])
    shared = overlaps(members, known)
    pairs = _assign(sim, threshold)
    pairs.update(_drifted(shared, members, known, pairs, overlap))
    out = Outcome(theme_of=[""] * len(centroids))
    for i, j in pairs.items():
        out.theme_of[i] = known[j].theme_id
        out.kept[known[j].theme_id] = i
    _fold(out, centroids, ghosts, threshold)
    _lineage(out, shared, members, known, pairs, overlap, mint)
    return out


def _assign(sim: np.ndarray, threshold: float) -> dict[int, int]:
    if not sim.size:
        return {}
    rows, cols = linear_sum_assignment(-sim)
    return {int(i): int(j) for i, j in zip(rows, cols, strict=True) if sim[i, j] >= threshold}


def _drifted(
    shared: np.ndarray,
    members: Sequence[frozenset[str]],
    known: Sequence[Known],
    pairs: dict[int, int],
    overlap: float,
) -> dict[int, int]:
    taken = set(pairs.values())
    out: dict[int, int] = {}
    for i in range(len(members)):
        if i in pairs or not shared.shape[1]:
            continue
        j = int(np.argmax(shared[i]))
        both = shared[i, j] >= overlap * max(len(members[i]), 1)
        both = both and shared[i, j] >= overlap * max(len(known[j].members), 1)
        if both and j not in taken and shared[i, j] > 0:
            out[i] = j
            taken.add(j)
    return out


def _fold(out: Outcome, centroids: np.ndarray, ghosts: Sequence[Ghost], threshold: float) -> None:
    free = [i for i, t in enumerate(out.theme_of) if not t]
    if not free or not ghosts:
        return
    sim = cosine(centroids[free], np.stack([g.centroid for g in ghosts]))
    for row, i in enumerate(free):
        g = int(np.argmax(sim[row]))
        if sim[row, g] >= threshold:
            out.theme_of[i] = ghosts[g].into
            out.folded[i] = ghosts[g].into


def _lineage(
    out: Outcome,
    shared: np.ndarray,
    members: Sequence[frozenset[str]],
    known: Sequence[Known],
    pairs: dict[int, int],
    overlap: float,
    mint: Callable[[], str],
) -> None:
    paired_known = set(pairs.values())
    for i, tid in enumerate(out.theme_of):
        if tid:
            continue
        out.theme_of[i] = new = mint()
        out.created.append(new)
        j = int(np.argmax(shared[i])) if shared.shape[1] else -1
        if j >= 0 and j in paired_known and shared[i, j] >= overlap * max(len(members[i]), 1):
            out.split[new] = known[j].theme_id
    for j, k in enumerate(known):
        if j in paired_known:
            continue
        i = int(np.argmax(shared[:, j])) if shared.shape[0] else -1
        if i >= 0 and shared[i, j] >= overlap * max(len(k.members), 1) and shared[i, j] > 0:
            out.merged[k.theme_id] = out.theme_of[i]
        else:
            out.retired.append(k.theme_id)
