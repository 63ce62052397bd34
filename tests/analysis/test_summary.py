"""The per-model numbers on hand-built records whose answers are known in advance."""

import itertools

import numpy as np
import pytest

from omnirouter.analysis.records import RoutingRecords
from omnirouter.analysis.summary import SummaryConfig, silence_mask, summarize


def make_records(
    experts_LN: np.ndarray,
    energy_N: np.ndarray,
    lengths: list[int],
    router_ids: tuple[int, ...],
) -> RoutingRecords:
    return RoutingRecords(
        name="model",
        family="omni" if len(set(router_ids)) == 1 else "switch",
        layers=tuple(range(experts_LN.shape[0])),
        router_ids=router_ids,
        num_experts=4,
        stack_frames=4,
        cut_ids=tuple(f"u{index}" for index in range(len(lengths))),
        experts_LN=experts_LN.astype(np.int16),
        energy_N=energy_N.astype(np.float32),
        offsets_U=np.concatenate([[0], np.cumsum(lengths)]),
    )


def silence_speech_utterance(
    length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Energy: quiet first and last quarter, loud middle; the truth mask beside it."""
    silent = np.zeros(length, dtype=bool)
    silent[: length // 4] = silent[length - length // 4 :] = True
    energy = np.where(silent, -10.0, 0.0) + rng.normal(0, 0.2, length)
    return energy, silent


def test_silence_mask_finds_the_quiet_steps_of_every_utterance() -> None:
    rng = np.random.default_rng(0)
    lengths = [40, 64, 52]
    pieces = [silence_speech_utterance(length, rng) for length in lengths]
    # A level shift per utterance must not matter: the rule is relative to each utterance.
    energy = np.concatenate([energy + shift for (energy, _), shift in zip(pieces, (0, 30, -7))])
    truth = np.concatenate([silent for _, silent in pieces])
    records = make_records(np.zeros((1, sum(lengths))), energy, lengths, (0,))
    np.testing.assert_array_equal(silence_mask(records, 0.3), truth)


def test_summary_of_a_silence_expert_and_identical_layers() -> None:
    rng = np.random.default_rng(1)
    lengths = [48, 80]
    pieces = [silence_speech_utterance(length, rng) for length in lengths]
    energy = np.concatenate([energy for energy, _ in pieces])
    silent = np.concatenate([mask for _, mask in pieces])
    # Expert 2 takes every silence step; speech alternates experts 0 and 1 in blocks of 4.
    speech_experts = (np.arange(silent.size) // 4) % 2
    layer = np.where(silent, 2, speech_experts)
    experts_LN = np.stack([layer, layer, layer])
    summary = summarize(make_records(experts_LN, energy, lengths, (0, 0, 0)), SummaryConfig())

    np.testing.assert_allclose(summary.cramers_v_LL, np.ones((3, 3)))
    np.testing.assert_allclose(summary.agreement_raw_P, [1.0, 1.0])
    np.testing.assert_allclose(summary.agreement_mapped_P, [1.0, 1.0])
    assert summary.silence_fraction == pytest.approx(silent.mean())
    np.testing.assert_allclose(summary.silence_share_LE[:, 2], 1.0)
    np.testing.assert_allclose(summary.speech_share_LE[:, 2], 0.0)
    np.testing.assert_allclose(summary.speech_share_LE[:, :2].sum(axis=1), 1.0)
    expected_load = np.bincount(layer, minlength=4) / layer.size
    np.testing.assert_allclose(summary.load_LE, np.tile(expected_load, (3, 1)))
    # Runs counted by hand, cut at the utterance boundary.
    runs = sum(
        1 + np.count_nonzero(np.diff(layer[start:end])) for start, end in ((0, 48), (48, 128))
    )
    np.testing.assert_allclose(summary.run_length_L, layer.size / runs)
    assert summary.contingency is not None
    assert (summary.contingency.first_layer, summary.contingency.second_layer) == (1, 2)


def test_switch_summary_reports_raw_and_mapped_agreement() -> None:
    rng = np.random.default_rng(2)
    lengths = [100, 100]
    base = rng.integers(0, 4, 200)
    noisy = np.where(rng.random(200) < 0.1, rng.integers(0, 4, 200), base)
    renaming = np.array([3, 0, 1, 2])
    experts_LN = np.stack([renaming[noisy], base])
    energy = rng.normal(0, 1, 200)
    summary = summarize(make_records(experts_LN, energy, lengths, (0, 1)), SummaryConfig())

    raw = np.mean(renaming[noisy] == base)
    assert summary.agreement_raw_P[0] == pytest.approx(raw)
    assert summary.agreement_mapped_P[0] == pytest.approx(np.mean(noisy == base))
    # Figures name layer 1's experts after layer 2's: the renaming is undone.
    np.testing.assert_array_equal(summary.labels_LE[0][renaming], np.arange(4))
    panel = summary.contingency
    assert panel is not None
    # Columns reordered so the diagonal holds the best one-to-one matching (brute force).
    table = np.zeros((4, 4), dtype=int)
    np.add.at(table, (experts_LN[0], experts_LN[1]), 1)
    best = max(table[np.arange(4), list(perm)].sum() for perm in itertools.permutations(range(4)))
    assert np.trace(panel.table_EE) == best
    np.testing.assert_array_equal(panel.table_EE, table[:, panel.column_order_E])


def test_contingency_layers_are_chosen_by_number_and_checked() -> None:
    rng = np.random.default_rng(3)
    experts_LN = rng.integers(0, 4, (4, 60))
    records = make_records(experts_LN, rng.normal(0, 1, 60), [60], (0, 1, 2, 3))
    panel = summarize(records, SummaryConfig(contingency_layers=[1, 3])).contingency
    assert panel is not None and (panel.first_layer, panel.second_layer) == (0, 2)
    with pytest.raises(ValueError, match="not an MoE layer"):
        summarize(records, SummaryConfig(contingency_layers=[1, 9]))
