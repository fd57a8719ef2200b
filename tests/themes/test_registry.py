"""Registry matching: ids kept across refits, lineage for merges and splits, a person's merges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from feedback_ai.themes.registry import Ghost, Known, match

DIM = 32


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def base() -> np.ndarray:
    return unit(np.random.default_rng(0).standard_normal((6, DIM)))


def mint_ids():  # type: ignore[no-untyped-def]
    counter = itertools.count(1)
    return lambda: f"new{next(counter)}"


def items(prefix: str, n: int) -> frozenset[str]:
    return frozenset(f"{prefix}{i}" for i in range(n))


def nudge(v: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return unit(v + scale * np.random.default_rng(seed).standard_normal(v.shape) / np.sqrt(DIM))


def test_same_clusters_in_another_order_keep_their_ids(base: np.ndarray) -> None:
    known = [Known(f"t{i}", base[i], items(f"a{i}-", 20)) for i in range(4)]
    order = [2, 0, 3, 1]
    centroids = nudge(base[order], 0.1, 1)
    members = [items(f"a{i}-", 20) for i in order]
    out = match(centroids, members, known, mint_ids())
    assert out.theme_of == ["t2", "t0", "t3", "t1"]
    assert out.created == [] and out.retired == [] and out.merged == {} and out.split == {}


def test_a_cluster_far_from_every_theme_is_new_and_an_unmatched_theme_retires(
    base: np.ndarray,
) -> None:
    known = [Known("t0", base[0], items("a", 10)), Known("t1", base[1], items("b", 10))]
    out = match(base[[0, 2]], [items("a", 10), items("c", 10)], known, mint_ids())
    assert out.theme_of == ["t0", "new1"]
    assert out.created == ["new1"] and out.retired == ["t1"] and out.split == {}


def test_two_themes_joined_by_a_refit_are_recorded_as_a_merge(base: np.ndarray) -> None:
    a, b = base[0], nudge(base[0], 0.9, 2)  # related themes: their union drifts towards a
    known = [Known("ta", a, items("a", 30)), Known("tb", b, items("b", 10))]
    joined = unit(30 * a + 10 * b)
    out = match(joined[None], [items("a", 30) | items("b", 10)], known, mint_ids())
    assert out.theme_of == ["ta"]
    assert out.merged == {"tb": "ta"} and out.retired == []


def test_a_theme_cut_in_two_keeps_its_id_on_the_larger_part_and_the_other_splits_from_it(
    base: np.ndarray,
) -> None:
    members = items("a", 30) | items("b", 12)
    known = [Known("t", unit(30 * base[0] + 12 * base[1]), members), Known("u", base[3])]
    out = match(base[[0, 1]], [items("a", 30), items("b", 12)], known, mint_ids(), threshold=0.5)
    assert out.theme_of[0] == "t"
    new = out.theme_of[1]
    assert out.split == {new: "t"} and out.created == [new]
    assert out.retired == ["u"]  # its centroid matched nothing and it had no members


def test_drifted_centroid_keeps_its_id_when_the_members_are_the_same(base: np.ndarray) -> None:
    known = [Known("t", base[0], items("a", 25))]
    out = match(base[[4]], [items("a", 24)], known, mint_ids())  # far centroid, same members
    assert out.theme_of == ["t"] and out.created == []


def test_a_persons_merge_folds_a_look_alike_cluster_into_its_target(base: np.ndarray) -> None:
    known = [Known("target", base[0], items("a", 20))]
    ghosts = [Ghost(centroid=base[1], into="target")]
    out = match(
        nudge(base[[0, 1, 2]], 0.05, 3),
        [items("a", 20), items("b", 9), items("c", 9)],
        known,
        mint_ids(),
        ghosts,
    )
    assert out.theme_of[:2] == ["target", "target"] and out.folded == {1: "target"}
    assert out.theme_of[2] == "new1"


def test_no_known_themes_mints_one_id_per_cluster(base: np.ndarray) -> None:
    out = match(base[:3], [items("a", 3), items("b", 3), items("c", 3)], [], mint_ids())
    assert out.theme_of == ["new1", "new2", "new3"] and out.retired == []


def test_threshold_decides_between_keeping_and_minting(base: np.ndarray) -> None:
    moved = nudge(base[0], 1.0, 4)
    similarity = float(moved @ base[0])
    known = [Known("t", base[0])]
    kept = match(moved[None], [items("x", 5)], known, mint_ids(), threshold=similarity - 0.01)
    assert kept.theme_of == ["t"]
    fresh = match(moved[None], [items("x", 5)], known, mint_ids(), threshold=similarity + 0.01)
    assert fresh.theme_of == ["new1"] and fresh.retired == ["t"]
