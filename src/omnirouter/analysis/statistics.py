"""How two layers' expert choices relate: contingency tables, Cramér's V, optimal expert mapping,
and the "structure" numbers of a routing pattern (agreement of adjacent layers, run lengths).

All functions take plain integer arrays of expert ids (one entry per step), so they apply to
any pair of layers, any model and any set.

Shape legend: E experts, N steps, L layers.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats.contingency import association


def contingency_table(first_N: np.ndarray, second_N: np.ndarray, num_experts: int) -> np.ndarray:
    """(E, E) counts: entry (i, j) = steps routed to expert i in the first layer and j in the
    second. Every expert has a row and a column, used or not."""
    # One bincount over pair codes: ~60× faster than scipy's crosstab on 10⁵–10⁶ steps, and
    # an analysis builds one table per pair of layers (L² / 2 of them).
    pair_codes_N = first_N.astype(np.int64) * num_experts + second_N.astype(np.int64)
    counts = np.bincount(pair_codes_N, minlength=num_experts * num_experts)
    return counts.reshape(num_experts, num_experts)


def cramers_v(table_EE: np.ndarray) -> float:
    """Cramér's V of a contingency table (no continuity correction), in [0, 1].

    Experts never chosen (all-zero rows or columns) carry no information and are dropped
    first; scipy would otherwise fail on a zero expected count. If either layer then uses a
    single expert (a constant layer), V is 0/0; we define it as 0: knowing a constant layer
    tells nothing about the other one.
    """
    table_EE = np.asarray(table_EE)
    used_rows = table_EE.sum(axis=1) > 0
    used_columns = table_EE.sum(axis=0) > 0
    reduced = table_EE[np.ix_(used_rows, used_columns)]
    if min(reduced.shape) < 2:
        return 0.0
    return float(association(reduced.astype(np.int64), method="cramer"))


def optimal_mapping(table_EE: np.ndarray) -> np.ndarray:
    """The one-to-one expert matching that maximises the steps on the diagonal (Hungarian).

    Returns `column_of_row_E`: expert i of the first layer is matched to expert
    `column_of_row_E[i]` of the second.
    """
    rows_E, columns_E = linear_sum_assignment(np.asarray(table_EE), maximize=True)
    column_of_row_E = np.empty(len(rows_E), dtype=np.int64)
    column_of_row_E[rows_E] = columns_E
    return column_of_row_E


def chained_relabelling(
    experts_LN: np.ndarray, router_ids: tuple[int, ...], num_experts: int
) -> np.ndarray:
    """(L, E) display labels: expert e of layer l is shown as label `labels_LE[l, e]`.

    Expert ids of different routers mean nothing to each other, so for figures each layer's
    experts are renamed after the layer above it, chained down from the LAST layer, which
    keeps its own ids: layer l takes the labels of the layer-(l+1) experts it best matches
    (Hungarian on their contingency table). Chaining through ADJACENT layers (rather than
    matching every layer to one fixed reference) makes each neighbouring pair as consistent
    as a one-to-one renaming allows, which is what the eye follows in a routing image; the
    last layer is the reference because depth is where the routing is most specialised
    (paper §VI-B). Layers that share a router share its ids, so they share a renaming.
    """
    num_layers = experts_LN.shape[0]
    labels_LE = np.tile(np.arange(num_experts), (num_layers, 1))
    for layer in range(num_layers - 2, -1, -1):
        if router_ids[layer] == router_ids[layer + 1]:
            labels_LE[layer] = labels_LE[layer + 1]
            continue
        table_EE = contingency_table(experts_LN[layer], experts_LN[layer + 1], num_experts)
        labels_LE[layer] = labels_LE[layer + 1][optimal_mapping(table_EE)]
    return labels_LE


def relabel(experts_LN: np.ndarray, labels_LE: np.ndarray) -> np.ndarray:
    """Experts renamed layer by layer with `labels_LE` (see `chained_relabelling`)."""
    return np.take_along_axis(labels_LE, experts_LN.astype(np.int64), axis=1)


def agreement(first_N: np.ndarray, second_N: np.ndarray) -> float:
    """Fraction of steps with the same expert id in both layers."""
    return float(np.mean(first_N == second_N)) if len(first_N) else 0.0


def mapped_agreement(table_EE: np.ndarray) -> float:
    """Fraction of steps on the diagonal after the optimal one-to-one renaming of experts."""
    total = table_EE.sum()
    if total == 0:
        return 0.0
    column_of_row_E = optimal_mapping(table_EE)
    return float(table_EE[np.arange(len(column_of_row_E)), column_of_row_E].sum() / total)


def mean_run_length(experts_N: np.ndarray, offsets_U: np.ndarray) -> float:
    """Mean length of the maximal runs of one expert over consecutive steps, in steps: total
    steps over total runs, where a run also ends at every utterance boundary (`offsets_U`,
    U + 1 entries, as in `RoutingRecords`)."""
    if len(experts_N) == 0:
        return 0.0
    starts_N = np.ones(len(experts_N), dtype=bool)
    starts_N[1:] = experts_N[1:] != experts_N[:-1]
    starts_N[offsets_U[:-1][offsets_U[:-1] < len(experts_N)]] = True
    return len(experts_N) / int(starts_N.sum())


def chance_run_length(load_E: np.ndarray, lengths_U: np.ndarray) -> float:
    """Mean run length (steps per run) expected if every step drew its expert independently
    with the given loads, for utterances of the given lengths: a step continues the run of
    the one before it with probability Σ_e p_e², and every utterance starts a run, so
    runs ≈ Σ_u (1 + (S_u − 1)(1 − Σ_e p_e²))."""
    lengths_U = np.asarray(lengths_U)
    lengths_U = lengths_U[lengths_U > 0]
    change = 1.0 - float(np.sum(np.square(load_E)))
    expected_runs = float(np.sum(1.0 + (lengths_U - 1) * change))
    return float(lengths_U.sum()) / expected_runs if expected_runs > 0 else 0.0
