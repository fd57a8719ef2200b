"""Emerging themes: groups gathering in the unassigned pool, proposed as new themes.

Mentions far from every theme wait in the pool (`theme_pool`). When it has grown by
`emerging_check_every` mentions, the most recent `emerging_max_pool` are clustered (average
linkage, cosine); a group of at least `emerging_min_items` items whose mentions are, on average,
at least as similar to each other as the live threshold asks of a theme's members becomes a
theme with status `emerging`, flagged new until the next refit takes it over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from feedback_ai.records.theme_repo import Event, ThemeState
from feedback_ai.store._base import ThemePoint
from feedback_ai.themes import fit as fitting
from feedback_ai.themes.labels import group_keywords, label, quotes
from feedback_ai.themes.rows import by_item, item_rows

if TYPE_CHECKING:
    from feedback_ai.themes.service import ThemeService


def detect(svc: ThemeService, workspace: str, actor: str = "emerging") -> list[str]:
    """Propose new themes from the unassigned pool: groups of at least
    `emerging_min_items` items whose mentions are, on average, as similar to each other as
    a theme's members are to its centroid (average-linkage clustering, cosine)."""
    from sklearn.cluster import AgglomerativeClustering

    svc.db.pool_checked(workspace)
    cents = svc.centroids(workspace)
    pool = svc.db.pool(workspace, svc.settings.emerging_max_pool)
    if cents is None or len({p.item_id for p in pool}) < svc.settings.emerging_min_items:
        return []
    mentions = [
        m for m in svc.store.retrieve(workspace, [p.point_id for p in pool]) if m.vector is not None
    ]
    if len(mentions) < 2:
        return []
    vectors = np.stack([np.asarray(m.vector, np.float32) for m in mentions])
    labels = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=1.0 - cents.threshold,
    ).fit_predict(vectors)
    groups = [
        np.flatnonzero(labels == k)
        for k in np.unique(labels)
        if len({mentions[i].item_id for i in np.flatnonzero(labels == k)})
        >= svc.settings.emerging_min_items
    ]
    return _propose(svc, workspace, mentions, vectors, groups, actor) if groups else []


def _propose(
    svc: ThemeService,
    workspace: str,
    mentions: list[Any],
    vectors: np.ndarray,
    groups: list[np.ndarray],
    actor: str,
) -> list[str]:
    texts = [m.text for m in mentions]
    theme_of = np.full(len(mentions), -1, dtype=np.int64)
    for k, g in enumerate(groups):
        theme_of[g] = k
    ids_ = [svc.new_id() for _ in groups]
    cents = fitting.centroids(vectors, theme_of, len(groups))
    rest = [[texts[i] for i in np.flatnonzero(theme_of < 0)]]
    keywords = group_keywords(
        [[texts[i] for i in g] for g in groups] + rest, svc.label_nlp.lemma_table(texts)
    )
    states = [
        _state(ids_[k], g, mentions, vectors, cents[k], keywords[k]) for k, g in enumerate(groups)
    ]
    grouped = by_item(
        [m.item_id for m in mentions],
        theme_of,
        np.einsum("ij,ij->i", vectors, cents[np.maximum(theme_of, 0)]),
        [m.payload.get("sentiment", np.nan) for m in mentions],
    )
    svc.store.upsert_themes(
        [
            ThemePoint(workspace, s.theme_id, c, s.label or "", s.status)
            for s, c in zip(states, cents, strict=True)
        ]
    )
    svc.db.commit(
        workspace,
        actor,
        states,
        [Event(s.theme_id, "emerged", detail={"items": s.items}) for s in states],
        add_rows=item_rows(workspace, grouped, ids_, svc.db.item_fields, "live"),
        unpool=[mentions[i].id for g in groups for i in g],
    )
    return ids_


def _state(
    theme_id: str,
    g: np.ndarray,
    mentions: list[Any],
    vectors: np.ndarray,
    centroid: np.ndarray,
    keywords: list[str],
) -> ThemeState:
    q = quotes(
        vectors[g],
        centroid,
        [mentions[i].item_id for i in g],
        [mentions[i].mention_index for i in g],
        [mentions[i].text for i in g],
    )
    return ThemeState(
        theme_id,
        status="emerging",
        label=label(keywords, []),
        keywords=keywords,
        quotes=[vars(x) for x in q],
        items=len({mentions[i].item_id for i in g}),
        mentions=len(g),
        origin="emerging",
        is_new=True,
    )
