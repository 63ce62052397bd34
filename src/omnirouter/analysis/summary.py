"""Every number the routing analysis reports for one model, computed from its records.

Silence is defined per utterance, so that neither the recording level nor a feature
normalisation moves it: a step is silence when its energy (mean log-mel level, see
`records`) lies below `low + silence_threshold · (high − low)`, where low and high are the
utterance's 5th and 95th energy percentiles. Every utterance is assumed to have both silence
and speech; in an utterance without pauses the quietest speech steps count as silence.

Expert names: for a Switch-style model (more than one router) the experts of each layer are
renamed by `statistics.chained_relabelling` before the loads and silence/speech shares are
tabulated, the same renaming Fig. 2 uses, so a column means "the same expert" down the layers
as far as the routing allows. A shared router's ids already mean the same thing in every layer.

Shape legend: L MoE layers, P = L − 1 adjacent layer pairs, E experts, N steps, U utterances.
"""

# Shape-suffixed field names (experts_LN) are the project's convention, as in model code.

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnirouter.analysis.records import RoutingRecords
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
from omnirouter.config import require
from omnirouter.jsonio import plain
from omnirouter.model.config import Family

ENERGY_PERCENTILES = (5.0, 95.0)  # the utterance's "quiet" and "loud" reference levels


@dataclass(frozen=True)
class SummaryConfig:
    silence_threshold: float = 0.3  # silence below low + this · (high − low), per utterance
    contingency_layers: list[int] | None = None  # two 1-based layer numbers; None = last two

    def __post_init__(self) -> None:
        threshold = self.silence_threshold
        require(0 <= threshold <= 1, "analysis.summary.silence_threshold", "in [0, 1]", threshold)
        layers = self.contingency_layers
        require(
            layers is None or (len(layers) == 2 and min(layers) >= 1),
            "analysis.summary.contingency_layers",
            "two layer numbers >= 1",
            layers,
        )


@dataclass(frozen=True)
class ContingencyPanel:
    """Fig. 4: expert co-occurrence of two layers, the second layer's experts reordered so
    the optimal one-to-one matching lies on the diagonal."""

    first_layer: int  # 0-based block index
    second_layer: int
    table_EE: np.ndarray  # row i: first-layer expert i; column j: second-layer column_order_E[j]
    column_order_E: np.ndarray  # second-layer expert ids in the order shown
    cramers_v: float


@dataclass(frozen=True)
class RoutingSummary:
    name: str
    family: Family
    layers: tuple[int, ...]  # 0-based block indices of the MoE layers
    num_experts: int
    num_utterances: int
    num_steps: int
    step_seconds: float
    shared_router: bool
    labels_LE: np.ndarray  # display name of expert e of layer l (identity for a shared router)
    load_LE: np.ndarray  # fraction of steps per (renamed) expert
    cramers_v_LL: np.ndarray  # Cramér's V of every pair of layers (1 on the diagonal)
    adjacent_cramers_v_P: np.ndarray
    agreement_raw_P: np.ndarray  # same expert id in layers l and l+1
    agreement_mapped_P: np.ndarray  # same expert after the optimal renaming of the pair
    run_length_L: np.ndarray  # mean steps per run of one expert, over all utterances
    chance_run_length_L: np.ndarray  # the same for independent steps with the same loads
    silence_fraction: float  # of all steps
    silence_share_LE: np.ndarray  # of all silence steps of layer l, the share each expert takes
    speech_share_LE: np.ndarray  # likewise for speech steps
    contingency: ContingencyPanel | None


def silence_mask(records: RoutingRecords, threshold: float) -> np.ndarray:
    """(N,) True on silence steps, by the per-utterance energy rule of this module."""
    silent_N = np.zeros(records.num_steps, dtype=bool)
    for index in range(len(records.cut_ids)):
        energy_S = records.utterance_energy(index)
        if energy_S.size == 0:
            continue
        low, high = np.percentile(energy_S, ENERGY_PERCENTILES)
        start = records.offsets_U[index]
        silent_N[start : start + energy_S.size] = energy_S < low + threshold * (high - low)
    return silent_N


def summarize(records: RoutingRecords, config: SummaryConfig) -> RoutingSummary:
    experts_LN = records.experts_LN.astype(np.int64)
    num_layers, num_experts = records.num_layers, records.num_experts
    if num_layers == 0:
        raise ValueError(f"{records.name!r} has no MoE layers: nothing to summarise")
    labels_LE = chained_relabelling(experts_LN, records.router_ids, num_experts)
    named_LN = relabel(experts_LN, labels_LE)
    silent_N = silence_mask(records, config.silence_threshold)
    lengths_U = np.diff(records.offsets_U)
    cramers_v_LL = np.eye(num_layers)
    for first in range(num_layers):
        for second in range(first + 1, num_layers):
            table = contingency_table(experts_LN[first], experts_LN[second], num_experts)
            cramers_v_LL[first, second] = cramers_v_LL[second, first] = cramers_v(table)
    adjacent_tables = [
        contingency_table(experts_LN[layer], experts_LN[layer + 1], num_experts)
        for layer in range(num_layers - 1)
    ]
    load_LE = _shares(named_LN, num_experts)
    return RoutingSummary(
        name=records.name,
        family=records.family,
        layers=records.layers,
        num_experts=num_experts,
        num_utterances=len(records.cut_ids),
        num_steps=records.num_steps,
        step_seconds=records.step_seconds,
        shared_router=records.is_shared_router,
        labels_LE=labels_LE,
        load_LE=load_LE,
        cramers_v_LL=cramers_v_LL,
        adjacent_cramers_v_P=np.diagonal(cramers_v_LL, offset=1).copy(),
        agreement_raw_P=np.array(
            [agreement(experts_LN[layer], experts_LN[layer + 1]) for layer in range(num_layers - 1)]
        ),
        agreement_mapped_P=np.array([mapped_agreement(table) for table in adjacent_tables]),
        run_length_L=np.array(
            [mean_run_length(experts_LN[layer], records.offsets_U) for layer in range(num_layers)]
        ),
        chance_run_length_L=np.array(
            [chance_run_length(load_LE[layer], lengths_U) for layer in range(num_layers)]
        ),
        silence_fraction=float(silent_N.mean()) if silent_N.size else 0.0,
        silence_share_LE=_shares(named_LN[:, silent_N], num_experts),
        speech_share_LE=_shares(named_LN[:, ~silent_N], num_experts),
        contingency=_contingency_panel(experts_LN, records, config.contingency_layers),
    )


def _shares(experts_LN: np.ndarray, num_experts: int) -> np.ndarray:
    """(L, E) fraction of each layer's steps per expert; zeros when there are no steps."""
    counts_LE = np.stack([np.bincount(row, minlength=num_experts) for row in experts_LN])
    totals_L1 = counts_LE.sum(axis=1, keepdims=True)
    return np.divide(counts_LE, totals_L1, out=np.zeros(counts_LE.shape), where=totals_L1 > 0)


def _contingency_panel(
    experts_LN: np.ndarray, records: RoutingRecords, layer_numbers: list[int] | None
) -> ContingencyPanel | None:
    if records.num_layers < 2:
        return None
    if layer_numbers is None:
        first, second = records.num_layers - 2, records.num_layers - 1
    else:
        if len(layer_numbers) != 2:
            raise ValueError(f"contingency_layers needs two layer numbers, got {layer_numbers}")
        first, second = (_moe_position(records, number) for number in layer_numbers)
    table_EE = contingency_table(experts_LN[first], experts_LN[second], records.num_experts)
    column_order_E = optimal_mapping(table_EE)
    return ContingencyPanel(
        first_layer=records.layers[first],
        second_layer=records.layers[second],
        table_EE=table_EE[:, column_order_E],
        column_order_E=column_order_E,
        cramers_v=cramers_v(table_EE),
    )


def _moe_position(records: RoutingRecords, layer_number: int) -> int:
    """Position among the MoE layers of the block with 1-based number `layer_number`."""
    block = layer_number - 1
    if block not in records.layers:
        numbers = [layer + 1 for layer in records.layers]
        raise ValueError(
            f"contingency layer {layer_number} is not an MoE layer of {records.name!r} "
            f"(MoE layers, numbered from 1: {numbers})"
        )
    return records.layers.index(block)


def summary_to_dict(summary: RoutingSummary) -> dict[str, object]:
    """JSON values (arrays as nested lists, NaN as null), with the layers numbered from 1."""
    document: dict[str, object] = plain(summary)
    document["layer_numbers"] = [layer + 1 for layer in summary.layers]
    return document
