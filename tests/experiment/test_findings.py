"""Findings are sentences made from the numbers: hand-made results, checked sentence by sentence."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest

from omnirouter.analysis.experiment_summary import (
    LossSummary,
    ModelSummary,
    RoutingNumbers,
    SeedValues,
    count_spikes,
)
from omnirouter.analysis.training import LossCurve
from omnirouter.report.findings import (
    Circumstances,
    cramers_v_finding,
    find,
    loss_finding,
    permutation_finding,
    possible_explanations,
    spike_finding,
    wer_finding,
)

SETS = ("a", "b")


def model(
    name: str,
    family: str,
    set_wers: dict[str, list[float]],
    routing: RoutingNumbers | None = None,
    spikes: int = 0,
) -> ModelSummary:
    """A model whose average WER per seed is the mean of its per-set WERs of that seed."""
    seeds = len(next(iter(set_wers.values())))
    averages = [statistics.fmean(set_wers[name][seed] for name in SETS) for seed in range(seeds)]
    curve = LossCurve(name, (1, 2), (3.0, 2.0))
    losses = tuple(LossSummary(seed, curve, spikes, 0) for seed in range(seeds))
    return ModelSummary(
        name=name,
        family=family,
        seeds=tuple(range(seeds)),
        average_wer=SeedValues(tuple(averages)),
        set_wer={key: SeedValues(tuple(values)) for key, values in set_wers.items()},
        losses=losses,
        routing=routing,
    )


def routing(adjacent_v: tuple[float, ...], change_at_half: float) -> RoutingNumbers:
    return RoutingNumbers(
        layer_pairs=tuple(f"{i + 1}–{i + 2}" for i in range(len(adjacent_v))),
        adjacent_cramers_v=adjacent_v,
        probabilities=(0.0, 0.5),
        permuted_wer_percent=(20.0, 20.0 * (1 + change_at_half / 100)),
        permuted_change_percent=(0.0, change_at_half),
        agreement_raw=0.5,
        agreement_mapped=0.6,
        run_length=3.0,
        chance_run_length=1.5,
    )


def test_the_papers_ordering_is_recognised() -> None:
    chosen = {
        "dense": model("base", "dense", {"a": [30.0], "b": [20.0]}),
        "switch": model("sw", "switch", {"a": [28.0], "b": [18.0]}),
        "omni": model("om", "omni", {"a": [24.0], "b": [16.0]}),
    }
    finding = wer_finding(chosen, SETS)
    assert finding.agrees is True
    assert "base 25.00% (1 seed) > sw 23.00% (1 seed) > om 20.00% (1 seed)" in finding.observed
    assert "the paper's ordering." in finding.observed
    # omni vs dense: per set 20% and 20% -> mean 20%; of the mean WER (25 -> 20): 20%.
    assert "om against base: +20.0% mean of the per-set relative WER reductions, +20.0% " in (
        finding.observed
    )
    # omni vs switch: per set 100·4/28 and 100·2/18; of the mean: 100·3/23.
    per_set = statistics.fmean([100 * 4 / 28, 100 * 2 / 18])
    assert f"{per_set:+.1f}% mean of the per-set" in finding.observed
    assert f"{100 * 3 / 23:+.1f}% reduction of the mean WER (paper: 8.2%)" in finding.observed


def test_a_reversed_ordering_is_reported_as_measured() -> None:
    chosen = {
        "dense": model("dense", "dense", {"a": [10.0], "b": [10.0]}),
        "switch": model("switch", "switch", {"a": [12.0], "b": [12.0]}),
        "omni": model("omni", "omni", {"a": [15.0], "b": [13.0]}),
    }
    finding = wer_finding(chosen, SETS)
    assert finding.agrees is False
    assert "omni 14.00% (1 seed) > switch 12.00% (1 seed) > dense 10.00% (1 seed)" in (
        finding.observed
    )
    assert "not the paper's ordering (dense > switch > omni)" in finding.observed
    # per set: 100·(10 − 15)/10 and 100·(10 − 13)/10, mean −40%
    assert "omni against dense: -40.0% mean of the per-set" in finding.observed


def test_equal_wers_are_not_the_papers_ordering() -> None:
    chosen = {
        "dense": model("dense", "dense", {"a": [100.0], "b": [100.0]}),
        "omni": model("omni", "omni", {"a": [100.0], "b": [100.0]}),
    }
    finding = wer_finding(chosen, SETS)
    assert finding.agrees is False
    assert "dense 100.00% (1 seed) = omni 100.00% (1 seed)" in finding.observed


def test_cers_are_ordered_beside_the_wers_without_changing_the_verdict() -> None:
    chosen = {
        "dense": model("dense", "dense", {"a": [100.0], "b": [100.0]}),
        "omni": model("omni", "omni", {"a": [100.0], "b": [100.0]}),
    }
    assert "CER" not in wer_finding(chosen, SETS).observed  # tables without CERs: no sentence
    chosen = {
        family: dataclasses.replace(summary, average_cer=SeedValues((cer,)))
        for (family, summary), cer in zip(chosen.items(), (60.0, 70.0))
    }
    finding = wer_finding(chosen, SETS)
    assert finding.agrees is False  # still decided by the equal WERs
    assert "Average test CER: omni 70.00% (1 seed) > dense 60.00% (1 seed)." in finding.observed


def test_seed_spread_decides_whether_a_difference_counts() -> None:
    dense_a, dense_b = [30.0, 34.0], [20.0, 20.0]
    dense = model("dense", "dense", {"a": dense_a, "b": dense_b})
    spread = statistics.stdev([25.0, 27.0])  # the per-seed averages
    near = model("omni", "omni", {"a": [29.0, 31.0], "b": [21.0, 21.0]})  # 25, 26
    far = model("omni", "omni", {"a": [10.0, 12.0], "b": [10.0, 10.0]})  # 10, 11
    near_spread = statistics.stdev([25.0, 26.0])
    finding = wer_finding({"dense": dense, "omni": near}, SETS)
    text = finding.observed
    assert f"dense 26.00 ± {spread:.2f}% (2 seeds)" in text
    assert f"within the seed spread ({spread:.2f} + {near_spread:.2f})" in text
    # The paper's ordering, but within the spread: not decided.
    assert finding.agrees is None and "not decided here" in text
    finding = wer_finding({"dense": dense, "omni": far}, SETS)
    assert "dense vs omni: 15.50 WER points, more than the seed spread" in finding.observed
    assert finding.agrees is True
    low_dense = model("dense", "dense", {"a": [10.0, 12.0], "b": [10.0, 10.0]})
    high_omni = model("omni", "omni", {"a": dense_a, "b": dense_b})
    reversed_far = wer_finding({"dense": low_dense, "omni": high_omni}, SETS)
    assert reversed_far.agrees is False  # the other way round, beyond the spread
    single = model("omni", "omni", {"a": [10.0], "b": [10.0]})
    text = wer_finding({"dense": dense, "omni": single}, SETS).observed
    assert "seed spread unknown (one seed of omni)" in text


def test_routing_findings_compare_omni_with_switch() -> None:
    switch = model("sw", "switch", {"a": [20.0], "b": [20.0]}, routing((0.1, 0.2, 0.3), 5.0))
    omni = model("om", "omni", {"a": [19.0], "b": [19.0]}, routing((0.5, 0.6, 0.9), 40.0))
    chosen = {"switch": switch, "omni": omni}
    v = cramers_v_finding(chosen)
    assert v.agrees is True
    assert f"om {np.mean([0.5, 0.6, 0.9]):.3f}, sw {np.mean([0.1, 0.2, 0.3]):.3f}" in v.observed
    # deeper half of 3 pairs: the last two
    assert "deeper half of the layer pairs: om 0.750, sw 0.250." in v.observed
    permutation = permutation_finding(chosen)
    assert permutation.agrees is True
    assert "p = 0.5: om +40.0%, sw +5.0%" in permutation.observed
    reversed_chosen = {
        "switch": dataclasses.replace(omni, family="switch"),
        "omni": dataclasses.replace(switch, family="omni"),
    }
    assert cramers_v_finding(reversed_chosen).agrees is False
    assert permutation_finding(reversed_chosen).agrees is False
    assert cramers_v_finding({"omni": omni}).agrees is None


def test_spikes_compare_switch_with_omni() -> None:
    quiet = {"a": [10.0], "b": [10.0]}
    calm = {"switch": model("s", "switch", quiet), "omni": model("o", "omni", quiet)}
    assert spike_finding(calm).agrees is None
    assert "no run was unstable" in spike_finding(calm).observed
    rough = {"switch": model("s", "switch", quiet, spikes=3), "omni": model("o", "omni", quiet)}
    finding = spike_finding(rough)
    assert finding.agrees is True
    assert "s 3 spike(s)" in finding.observed
    assert "o 0 spike(s)" in finding.observed
    alike = {family: model(family[0], family, quiet, spikes=1) for family in ("switch", "omni")}
    assert spike_finding(alike).agrees is None
    assert "does not separate them" in spike_finding(alike).observed


def test_explanations_name_what_differs_from_the_paper() -> None:
    small = Circumstances(
        largest_parameters=2_000_000,
        max_steps=3000,
        best_average_wer=80.0,
        fewest_seeds=1,
        synthetic_corpus=True,
        train_hours=3.0,
        test_hours=0.5,
    )
    reasons = possible_explanations(small)
    assert len(reasons) == 6
    assert any(reason.startswith("small models: at most 2M") for reason in reasons)
    assert any("3000 steps" in reason for reason in reasons)
    paper_like = Circumstances(200_000_000, 1_000_000, 10.0, 3, False, 10_000.0, 10.0)
    assert possible_explanations(paper_like) == []


def test_find_uses_the_first_model_of_each_family() -> None:
    models = [
        model("dense", "dense", {"a": [30.0], "b": [30.0]}),
        model("omni-a", "omni", {"a": [20.0], "b": [20.0]}),
        model("omni-b", "omni", {"a": [40.0], "b": [40.0]}),
    ]
    wer = find(models, SETS)[0]
    assert "omni-a" in wer.observed
    assert "omni-b" not in wer.observed
    assert wer.agrees is True


def test_spike_count_ignores_noise_and_counts_jumps() -> None:
    generator = np.random.default_rng(0)
    noisy = list(100 + 30 * generator.standard_normal(40))  # batch-to-batch noise only
    assert count_spikes(noisy) == 0
    falling = [10.0 / (1 + step) + 1.0 for step in range(30)]
    assert count_spikes(falling) == 0
    spiked = [*falling[:20], falling[19] * 3, *falling[21:]]
    assert count_spikes(spiked) == 1


def test_seed_values_use_the_sample_deviation() -> None:
    values = SeedValues((1.0, 2.0, 4.0))
    assert values.mean == pytest.approx(7 / 3)
    assert values.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert SeedValues((3.0,)).std is None
    assert SeedValues((math.nan, math.nan)).std is None  # unmeasured (a CER an old table lacks)


def test_expert_counts_are_compared_as_in_table_ii() -> None:
    def moe(name: str, family: str, experts: int, wers: list[float]) -> ModelSummary:
        summary = model(name, family, {"a": wers, "b": wers})
        return dataclasses.replace(summary, num_experts=experts, total_parameters=experts * 10**6)

    paper_like = [
        moe("switch-2e", "switch", 2, [20.0, 21.0]),
        moe("switch-8e", "switch", 8, [25.0, 26.0]),
        moe("omni-2e", "omni", 2, [20.0, 21.0]),
        moe("omni-8e", "omni", 8, [18.0, 19.0]),
    ]
    finding = find(paper_like, SETS)[-1]
    assert finding.topic == "Experts (Table II)"
    assert finding.agrees is True
    assert "8 against 2 experts: +5.00 WER points" in finding.observed
    assert "8 against 2 experts: -2.00 WER points" in finding.observed
    # 5 points apart, seed spread 0.71 + 0.71: beyond it.
    assert "more than the seed spread (0.71 + 0.71)" in finding.observed
    both_worse = [*paper_like[:3], moe("omni-8e", "omni", 8, [22.0, 23.0])]
    assert find(both_worse, SETS)[-1].agrees is False
    close = [*paper_like[:1], moe("switch-8e", "switch", 8, [20.5, 21.5]), *paper_like[2:3]]
    close.append(moe("omni-8e", "omni", 8, [19.8, 20.8]))
    undecided = find(close, SETS)[-1]
    assert undecided.agrees is None and "within the seed spread" in undecided.observed
    one_count = find(paper_like[::2], SETS)[-1]
    assert one_count.agrees is None and "two expert counts" in one_count.observed


def with_final_losses(summary: ModelSummary, finals: list[float]) -> ModelSummary:
    losses = tuple(
        LossSummary(seed, LossCurve(summary.name, (1,), (loss,)), 0, 0)
        for seed, loss in enumerate(finals)
    )
    return dataclasses.replace(summary, losses=losses)


def test_the_lowest_training_loss_counts_only_beyond_the_seed_spread() -> None:
    wers = {"a": [20.0, 20.0], "b": [20.0, 20.0]}
    dense = with_final_losses(model("dense", "dense", wers), [50.0, 52.0])
    omni_far = with_final_losses(model("omni", "omni", wers), [40.0, 41.0])
    omni_near = with_final_losses(model("omni", "omni", wers), [50.0, 51.0])
    decided = loss_finding({"dense": dense, "omni": omni_far})
    assert decided.agrees is True and "more than the seed spread" in decided.observed
    undecided = loss_finding({"dense": dense, "omni": omni_near})
    assert undecided.agrees is None and "not decided here" in undecided.observed
    higher = with_final_losses(model("omni", "omni", wers), [60.0, 61.0])
    assert loss_finding({"dense": dense, "omni": higher}).agrees is False
