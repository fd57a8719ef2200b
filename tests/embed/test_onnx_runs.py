"""How `OnnxEmbedder` cuts a length-sorted batch into session runs (pure function, no model)."""

from __future__ import annotations

import itertools

import pytest

from feedback_ai.embed.onnx import plan_runs


def _cost(lengths: list[int], runs: list[tuple[int, int]], run_cost: int) -> int:
    return sum((end - start) * lengths[end - 1] + run_cost for start, end in runs)


def _all_plans(n: int) -> list[list[tuple[int, int]]]:
    plans = []
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0, *(i + 1 for i, c in enumerate(cuts) if c), n]
        plans.append(list(itertools.pairwise(bounds)))
    return plans


def test_uniform_lengths_make_one_run() -> None:
    assert plan_runs([12] * 64) == [(0, 64)]


def test_a_long_outlier_gets_its_own_run() -> None:
    # one run: 11 texts padded to 200 tokens; two runs: 10 x 8 + 200, plus one more call
    assert plan_runs([8] * 10 + [200], run_cost=10) == [(0, 10), (10, 11)]


def test_call_cost_keeps_small_differences_together() -> None:
    assert plan_runs([10, 11], run_cost=10) == [(0, 2)]
    assert plan_runs([10, 11], run_cost=0) == [(0, 1), (1, 2)]


@pytest.mark.parametrize(
    "lengths",
    [[3, 5, 5, 9, 14, 14, 15, 40], [1, 2, 3, 4, 5, 6, 7, 8, 9], [7, 7, 30, 31, 31, 90, 91, 256]],
)
@pytest.mark.parametrize("run_cost", [0, 4, 10, 50])
def test_plan_is_contiguous_and_as_cheap_as_any(lengths: list[int], run_cost: int) -> None:
    runs = plan_runs(lengths, run_cost)
    assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(runs))
    cheapest = min(_cost(lengths, plan, run_cost) for plan in _all_plans(len(lengths)))
    assert _cost(lengths, runs, run_cost) == cheapest


def test_runs_are_capped_in_padded_tokens() -> None:
    """Attention memory grows with run size x length^2: long texts go in smaller runs."""
    runs = plan_runs([256] * 512, max_tokens=8_192)
    assert [end - start for start, end in runs] == [32] * 16
    assert plan_runs([20] * 256, max_tokens=8_192) == [(0, 256)]  # short feedback: one run
    assert plan_runs([5, 900], run_cost=10_000, max_tokens=100) == [(0, 1), (1, 2)]


def test_empty_batch_has_no_runs() -> None:
    assert plan_runs([]) == []
