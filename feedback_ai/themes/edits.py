"""Human edits of the theme registry: rename, mark as noise, merge, split, move feedback.

Each edit is one transaction with an audit event (who, when, what) and a taxonomy version bump,
and each is written so that later refits respect it (see `feedback_ai.themes.refit`):
a rename pins the label; noise stays noise; a merge leaves a `merge` constraint holding the
merged theme's centroid (clusters that look like it fold into the target); a split leaves a
`split` constraint holding the parts' centroids (a refit that joins them is split again); a
moved item is pinned (`origin = manual`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from feedback_ai import ids
from feedback_ai.errors import InvalidInput, NotFound
from feedback_ai.records.theme_models import LIVE_STATUSES
from feedback_ai.records.theme_repo import Event, ThemeState
from feedback_ai.store._base import ScoredMention, ThemePoint
from feedback_ai.themes import fit as fitting
from feedback_ai.themes.labels import group_keywords, label, quotes

if TYPE_CHECKING:
    from feedback_ai.themes.service import ThemeService

MAX_SPLIT = 10


def live_theme(svc: ThemeService, workspace: str, theme_id: str) -> Any:
    theme = svc.db.theme(workspace, theme_id)
    if theme.status not in LIVE_STATUSES:
        raise InvalidInput(
            f"theme {theme_id} is {theme.status}"
            + (f" into {theme.merged_into}" if theme.merged_into else ""),
            {"theme_id": theme_id, "status": theme.status},
        )
    return theme


def rename(svc: ThemeService, workspace: str, theme_id: str, new: str, actor: str) -> int:
    live_theme(svc, workspace, theme_id)
    new = new.strip()
    if not new or len(new) > 256:
        raise InvalidInput("a label is 1 to 256 characters", {"field": "label"})
    return svc.db.set_label(workspace, theme_id, new, actor)


def set_noise(svc: ThemeService, workspace: str, theme_id: str, noise: bool, actor: str) -> int:
    theme = live_theme(svc, workspace, theme_id)
    status = "noise" if noise else "active"
    centroid = _centroid(svc, workspace, theme_id)
    svc.store.upsert_themes([ThemePoint(workspace, theme_id, centroid, theme.label, status)])
    kind = "marked_noise" if noise else "unmarked_noise"
    state = ThemeState(theme_id, status=status)
    return svc.db.commit(workspace, actor, [state], [Event(theme_id, kind)])


def merge(svc: ThemeService, workspace: str, source: str, into: str, actor: str) -> int:
    if source == into:
        raise InvalidInput("a theme cannot be merged with itself", {"theme_id": source})
    src, dst = live_theme(svc, workspace, source), live_theme(svc, workspace, into)
    a, b = _centroid(svc, workspace, source), _centroid(svc, workspace, into)
    joined = a * max(src.mentions, 1) + b * max(dst.mentions, 1)
    joined /= max(float(np.linalg.norm(joined)), 1e-12)
    svc.store.upsert_themes([ThemePoint(workspace, into, joined, dst.label, dst.status)])
    orphans: list[str] = []
    version = svc.db.commit(
        workspace,
        actor,
        [
            ThemeState(source, status="merged", merged_into=into),
            ThemeState(into, status=dst.status),
        ],
        [Event(source, "merged", into, {"by": "person"})],
        merge_rows=(source, into),  # the rows moved, and the target recounted, under its lock
        drop_themes=[source],
        constraint=("merge", {"from": source, "into": into, "centroid": a.tolist()}),
        orphans=orphans,
    )
    svc.store.delete_themes(workspace, [source])
    svc.reassign(workspace, orphans)
    return version


def split(svc: ThemeService, workspace: str, theme_id: str, n: int, actor: str) -> list[str]:
    """Cut a theme into `n` parts by k-means over its mentions; the largest part keeps the id
    (and its label), the others are new themes `split_from` it."""
    from sklearn.cluster import KMeans

    theme = live_theme(svc, workspace, theme_id)
    if not 2 <= n <= MAX_SPLIT:
        raise InvalidInput(f"n must be between 2 and {MAX_SPLIT}, not {n}", {"field": "n"})
    mentions = theme_mentions(svc, workspace, theme_id)
    if len({m.item_id for m in mentions}) < n:
        raise InvalidInput(f"theme {theme_id} has fewer than {n} items to split", {"field": "n"})
    vectors = np.stack([np.asarray(m.vector, np.float32) for m in mentions])
    parts = KMeans(n, random_state=svc.settings.theme_seed, n_init=10).fit_predict(vectors)
    order = np.argsort(-np.bincount(parts, minlength=n))  # largest part first
    names = {int(p): theme_id if rank == 0 else svc.new_id() for rank, p in enumerate(order)}
    cents = fitting.centroids(vectors, parts, n)
    states = _part_states(svc, mentions, vectors, parts, cents, names, theme_id)
    rows = _part_rows(svc.db.theme_rows(workspace, theme_id), mentions, parts, names, theme_id)
    svc.store.upsert_themes(
        [ThemePoint(workspace, names[k], cents[k], theme.label, theme.status) for k in names]
    )
    orphans: list[str] = []
    svc.db.commit(
        workspace,
        actor,
        states,
        [Event(names[k], "split", theme_id, {"by": "person"}) for k in names if k != order[0]],
        add_rows=rows,
        drop_themes=[theme_id],
        held_only=True,  # an item deleted since the reads above gets no row back
        recount=list(names.values()),  # the parts' counts from the rows written, not the reads
        constraint=("split", {"parts": {names[k]: cents[k].tolist() for k in names}}),
        orphans=orphans,
    )
    svc.reassign(workspace, orphans)
    return [names[int(k)] for k in order]


def _part_states(
    svc: ThemeService,
    mentions: list[ScoredMention],
    vectors: np.ndarray,
    parts: np.ndarray,
    cents: np.ndarray,
    names: dict[int, str],
    theme_id: str,
) -> list[ThemeState]:
    texts = [m.text for m in mentions]
    groups = [[texts[i] for i in np.flatnonzero(parts == k)] for k in range(len(names))]
    keywords = group_keywords(groups, svc.label_nlp.lemma_table(texts[:3_000]))
    states = []
    for k, name in names.items():
        idx = np.flatnonzero(parts == k)
        q = quotes(
            vectors[idx],
            cents[k],
            [mentions[i].item_id for i in idx],
            [mentions[i].mention_index for i in idx],
            [texts[i] for i in idx],
        )
        kept = name == theme_id
        states.append(
            ThemeState(
                name,
                label=None if kept else label(keywords[k], []),
                keywords=keywords[k],
                quotes=[vars(x) for x in q],
                items=len({mentions[i].item_id for i in idx}),
                mentions=len(idx),
                origin="refit" if kept else "split",
                split_from=None if kept else theme_id,
            )
        )
    return states


def _part_rows(
    rows: list[dict[str, Any]],
    mentions: list[ScoredMention],
    parts: np.ndarray,
    names: dict[int, str],
    theme_id: str,
) -> list[dict[str, Any]]:
    """Each item goes to every part holding one of its mentions; an item none of whose
    mentions was read back stays in the kept part."""
    counts: dict[str, dict[str, int]] = {}
    for m, k in zip(mentions, parts, strict=True):
        per = counts.setdefault(m.item_id, {})
        per[names[int(k)]] = per.get(names[int(k)], 0) + 1
    out = []
    for row in rows:
        for name, n in (counts.get(row["item_id"]) or {theme_id: row["mentions"]}).items():
            out.append({**row, "theme_id": name, "mentions": n})
    return out


def theme_mentions(svc: ThemeService, workspace: str, theme_id: str) -> list[ScoredMention]:
    """The mentions that put the theme's items in it: those nearest its centroid among the
    workspace's themes (an item's other mentions may belong elsewhere)."""
    counts = svc.db.mention_counts(workspace, svc.db.theme_items(workspace, theme_id))
    point_ids = [ids.mention_id(item, i) for item, n in counts.items() for i in range(max(n, 1))]
    mentions = [m for m in svc.store.retrieve(workspace, point_ids) if m.vector is not None]
    cents = svc.centroids(workspace)
    if not mentions or cents is None or theme_id not in cents.ids:
        return mentions
    vectors = np.stack([np.asarray(m.vector, np.float32) for m in mentions])
    nearest = np.argmax(vectors @ cents.matrix.T, axis=1)
    mine = cents.ids.index(theme_id)
    return [m for m, k in zip(mentions, nearest, strict=True) if k == mine] or mentions


def move(
    svc: ThemeService, workspace: str, item_id: str, to: str, actor: str, source: str | None = None
) -> int:
    """A person places an item in theme `to` (out of `source`, or out of every theme)."""
    live_theme(svc, workspace, to)
    fields = svc.db.item_fields(workspace, [item_id]).get(item_id)
    if fields is None:
        raise NotFound(f"feedback {item_id} not found", {"id": item_id})
    current = svc.db.item_theme_ids(workspace, item_id)
    if source is not None and source not in current:
        raise InvalidInput(f"feedback {item_id} is not in theme {source}", {"from": source})
    row = {
        "workspace_id": workspace,
        "item_id": item_id,
        "theme_id": to,
        "mentions": 1,
        "similarity": 0.0,
        "sentiment": None,
        "origin": "manual",
        **fields,
    }
    leave = [source] if source is not None else [t for t in current if t != to]
    return svc.db.commit(
        workspace,
        actor,
        events=[Event(to, "moved", None, {"item_id": item_id, "from": leave})],
        add_rows=[row],
        remove=[(item_id, t) for t in leave],
    )


def _centroid(svc: ThemeService, workspace: str, theme_id: str) -> np.ndarray:
    for t in svc.store.list_themes(workspace):
        if t.theme_id == theme_id:
            return np.asarray(t.vector, np.float32)
    raise NotFound(f"theme {theme_id} has no centroid in the store", {"theme_id": theme_id})
