"""Contingency tables, Cramér's V, optimal mapping and structure numbers against independent
references: scipy, brute force over permutations, hand formulas and simulation."""

import itertools

import numpy as np
import pytest
from scipy.stats.contingency import association

from omnirouter.analysis.statistics import (
    agreement,
    chained_relabelling,
    chance_run_length,
    contingency_table,
    cramers_v,
    mapped_agreement,
    mean_run_length,
    optimal_mapping,
    relabel,
)


def hand_cramers_v(table: np.ndarray) -> float:
    table = table.astype(float)
    total = table.sum()
    expected = np.outer(table.sum(1), table.sum(0)) / total
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / (total * (min(table.shape) - 1))))


def test_contingency_table_counts_every_pair() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 5, 400), rng.integers(0, 5, 400)
    expected = np.zeros((5, 5), dtype=int)
    for a, b in zip(first, second):
        expected[a, b] += 1
    np.testing.assert_array_equal(contingency_table(first, second, 5), expected)


def test_contingency_table_keeps_unused_experts() -> None:
    table = contingency_table(np.array([0, 0, 1]), np.array([1, 1, 1]), 4)
    assert table.shape == (4, 4)
    assert table.sum() == 3


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (4, 4), (8, 8), (3, 5)])
def test_cramers_v_matches_scipy_on_random_tables(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(10):
        table = rng.integers(1, 60, shape)
        reference = association(table, method="cramer")
        assert cramers_v(table) == pytest.approx(reference, abs=1e-12)
        assert cramers_v(table) == pytest.approx(hand_cramers_v(table), abs=1e-12)


def test_cramers_v_of_a_permutation_table_is_one_and_of_independent_layers_is_small() -> None:
    assert cramers_v(np.eye(4, dtype=int)[[2, 0, 3, 1]] * 50) == pytest.approx(1.0)
    assert cramers_v(np.full((4, 4), 25)) == pytest.approx(0.0)


def test_cramers_v_drops_experts_that_are_never_chosen() -> None:
    rng = np.random.default_rng(1)
    used = rng.integers(1, 40, (3, 3))
    table = np.zeros((5, 5), dtype=int)
    table[np.ix_([0, 2, 4], [1, 2, 3])] = used
    assert cramers_v(table) == pytest.approx(association(used, method="cramer"), abs=1e-12)


@pytest.mark.parametrize(
    "table",
    [
        np.array([[0, 0, 0], [7, 3, 9], [0, 0, 0]]),  # first layer constant
        np.array([[0, 5, 0], [0, 2, 0], [0, 8, 0]]),  # second layer constant
        np.array([[0, 0], [0, 12]]),  # both constant
        np.zeros((3, 3), dtype=int),  # no steps at all
    ],
)
def test_cramers_v_with_a_constant_layer_is_zero(table: np.ndarray) -> None:
    assert cramers_v(table) == 0.0


def brute_force_best(table: np.ndarray) -> tuple[int, set[tuple[int, ...]]]:
    size = table.shape[0]
    totals = {
        perm: sum(table[i, perm[i]] for i in range(size))
        for perm in itertools.permutations(range(size))
    }
    best = max(totals.values())
    return best, {perm for perm, total in totals.items() if total == best}


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_optimal_mapping_equals_brute_force(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(30):
        table = rng.integers(0, 20, (size, size))
        mapping = optimal_mapping(table)
        best, optima = brute_force_best(table)
        assert sorted(mapping.tolist()) == list(range(size))  # one-to-one
        assert table[np.arange(size), mapping].sum() == best
        assert tuple(mapping.tolist()) in optima


def test_mapped_agreement_of_renamed_layers_is_one() -> None:
    rng = np.random.default_rng(2)
    first = rng.integers(0, 4, 300)
    renaming = np.array([2, 3, 1, 0])
    second = renaming[first]
    assert agreement(first, second) == pytest.approx(np.mean(first == second))
    assert mapped_agreement(contingency_table(first, second, 4)) == pytest.approx(1.0)


def test_chained_relabelling_undoes_per_layer_renamings() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 4, 500)
    renamings = [np.array(perm) for perm in ([1, 0, 3, 2], [3, 2, 1, 0], [0, 1, 2, 3])]
    experts_LN = np.stack([renaming[base] for renaming in renamings])
    labels_LE = chained_relabelling(experts_LN, (0, 1, 2), 4)
    named_LN = relabel(experts_LN, labels_LE)
    # The last layer is the reference: it keeps its ids and every layer now matches it.
    np.testing.assert_array_equal(labels_LE[-1], np.arange(4))
    for layer in range(3):
        np.testing.assert_array_equal(named_LN[layer], experts_LN[-1])


def test_chained_relabelling_keeps_a_shared_routers_ids() -> None:
    rng = np.random.default_rng(4)
    experts_LN = rng.integers(0, 3, (4, 200))
    labels_LE = chained_relabelling(experts_LN, (0, 0, 0, 0), 3)
    np.testing.assert_array_equal(labels_LE, np.tile(np.arange(3), (4, 1)))


def loop_run_count(experts: list[int]) -> int:
    """Runs of one utterance, counted one step at a time."""
    runs = 0
    for index, expert in enumerate(experts):
        if index == 0 or expert != experts[index - 1]:
            runs += 1
    return runs


def test_mean_run_length_by_hand() -> None:
    # Runs [2 2] [0] [1 1 1] [2], then a new utterance: [2] [0 0].
    experts = np.array([2, 2, 0, 1, 1, 1, 2, 2, 0, 0])
    assert mean_run_length(experts, np.array([0, 7, 10])) == pytest.approx(10 / 6)
    assert mean_run_length(experts, np.array([0, 10])) == pytest.approx(10 / 5)
    assert mean_run_length(np.array([], dtype=int), np.array([0])) == 0.0


def test_mean_run_length_matches_a_loop_over_utterances() -> None:
    rng = np.random.default_rng(6)
    lengths = rng.integers(0, 30, 50)  # empty utterances included
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    experts = rng.choice(3, size=int(lengths.sum()), p=[0.7, 0.2, 0.1])
    runs = sum(
        loop_run_count(experts[start:end].tolist()) for start, end in itertools.pairwise(offsets)
    )
    assert mean_run_length(experts, offsets) == pytest.approx(lengths.sum() / runs)


def test_chance_run_length_matches_simulation() -> None:
    rng = np.random.default_rng(5)
    load = np.array([0.5, 0.3, 0.15, 0.05])
    lengths = rng.integers(20, 200, 400)
    runs = sum(loop_run_count(rng.choice(4, size=length, p=load).tolist()) for length in lengths)
    simulated = lengths.sum() / runs
    assert chance_run_length(load, lengths) == pytest.approx(simulated, rel=0.03)


def test_chance_run_length_of_a_single_expert_is_the_utterance_length() -> None:
    assert chance_run_length(np.array([1.0, 0.0]), np.array([30, 50])) == pytest.approx(40.0)
