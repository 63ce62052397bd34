"""What an experiment found, set against the paper's findings, in sentences made from the numbers.

Gu, Likhomanenko and Jaitly (2025) report, for dense, Switch and Omni-router models:
  - WER: Omni-router lowest, then Switch, then dense (abstract: 11.2% and 8.2% lower average
    WER than dense and Switch);
  - a lower training loss for Omni-router;
  - a higher Cramér's V between adjacent layers' expert choices for Omni-router (§VI-B, Fig. 5);
  - a larger WER increase for Omni-router when experts are permuted at random (Fig. 3);
  - loss spikes and instability in Switch training on conversational data (§VI-D, Fig. 6);
  - with more experts (Table II: 2 → 8), Switch's WER rises while Omni-router's falls.

Each family is represented by its first model in the experiment's order. A difference between
two models "exceeds the seed spread" when it is larger than the sum of their standard
deviations over seeds; with one seed the spread is unknown and the text says so.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnirouter.analysis.experiment_summary import SPIKE_RULE, ModelSummary, SeedValues
from omnirouter.evaluate.compare import relative_reduction
from omnirouter.report.numbers import signed_percent

PAPER_WER_ORDER = ("dense", "switch", "omni")  # highest WER first
PAPER_OMNI_REDUCTION = {"dense": 11.2, "switch": 8.2}  # % lower average WER (abstract)
PAPER_SMALLEST_PARAMETERS = 84e6  # the paper's smallest dense trunk (§V-B)
PAPER_MAX_STEPS = 1_000_000  # "up to 1M steps" (§V-C)
UNDERTRAINED_WER = 50.0  # average test WER (%) above which a model has barely learnt
# The routing analysis looks at each model's first seed only.
ONE_SEED_NOTE = " Measured on one seed per model: the seed spread is not known."


@dataclass(frozen=True)
class Finding:
    topic: str
    paper: str  # what the paper reports
    observed: str  # what this experiment measured, as sentences
    agrees: bool | None  # None: cannot be compared (a family missing, nothing measured)
    one_seed: bool = False  # measured on one seed per model: the seed spread is not known


@dataclass(frozen=True)
class Circumstances:
    """What separates this experiment from the paper's, for the list of possible reasons."""

    largest_parameters: int
    max_steps: int
    best_average_wer: float  # % of the best model
    fewest_seeds: int
    synthetic_corpus: bool
    train_hours: float
    test_hours: float


def representatives(models: Sequence[ModelSummary]) -> dict[str, ModelSummary]:
    """The first model of each family, by family name."""
    chosen: dict[str, ModelSummary] = {}
    for model in models:
        chosen.setdefault(model.family, model)
    return chosen


def find(models: Sequence[ModelSummary], averaged_sets: Sequence[str]) -> list[Finding]:
    chosen = representatives(models)
    return [
        wer_finding(chosen, averaged_sets),
        loss_finding(chosen),
        cramers_v_finding(chosen),
        permutation_finding(chosen),
        spike_finding(chosen),
        expert_count_finding(models),
    ]


def wer_finding(chosen: dict[str, ModelSummary], averaged_sets: Sequence[str]) -> Finding:
    paper = (
        "average WER: dense > Switch > Omni-router; Omni-router 11.2% lower than dense and "
        "8.2% lower than Switch"
    )
    present = [chosen[family] for family in PAPER_WER_ORDER if family in chosen]
    if len(present) < 2:
        return Finding("WER", paper, _only(chosen, "WER ordering"), None)
    observed = sorted(present, key=lambda model: -model.average_wer.mean)
    means = [model.average_wer.mean for model in observed]
    strict = all(first > second for first, second in itertools.pairwise(means))
    agrees = strict and [model.family for model in observed] == [m.family for m in present]
    paper_order = " > ".join(model.family for model in present)
    sentences = [
        f"Average test WER (mean of the per-set WERs over {len(averaged_sets)} sets): "
        + _ordering(observed, lambda model: model.average_wer, "%")
        + ("; the paper's ordering." if agrees else f"; not the paper's ordering ({paper_order}).")
    ]
    sentences += _spread_sentences(observed, lambda model: model.average_wer, "WER points")
    if not _all_beyond_spread(observed, lambda model: model.average_wer):
        agrees = None
        sentences.append(
            "With a difference within the seed spread, the ordering is not decided here."
        )
    if "omni" in chosen:
        sentences += _reduction_sentences(chosen, averaged_sets)
    if all(math.isfinite(model.average_cer.mean) for model in present):
        # Not part of the verdict (the paper gives no CER), but it separates undertrained models.
        by_cer = sorted(present, key=lambda model: -model.average_cer.mean)
        sentences.append(
            "Average test CER: " + _ordering(by_cer, lambda model: model.average_cer, "%") + "."
        )
    return Finding("WER", paper, " ".join(sentences), agrees)


def loss_finding(chosen: dict[str, ModelSummary]) -> Finding:
    paper = "Omni-router reaches a lower training loss than dense and Switch"
    present = [model for model in chosen.values() if _final_losses(model) is not None]
    if "omni" not in chosen or _final_losses(chosen["omni"]) is None or len(present) < 2:
        return Finding("Training loss", paper, _only(chosen, "training-loss comparison"), None)
    ordered = sorted(present, key=lambda model: -_final_losses(model).mean)  # type: ignore[union-attr]
    agrees = ordered[-1].family == "omni"
    text = (
        "Final training CTC loss (mean of the last 10% of logged values): "
        + _ordering(ordered, _final_losses, "")  # type: ignore[arg-type]
        + (
            "; Omni-router's is the lowest."
            if agrees
            else f"; {ordered[-1].name}'s is the lowest, not Omni-router's."
        )
    )
    spread = _spread_sentences(ordered, _final_losses, "loss units")  # type: ignore[arg-type]
    # The verdict is about the lowest loss: it stands when the two lowest differ beyond spread.
    if not _all_beyond_spread(ordered[-2:], _final_losses):  # type: ignore[arg-type]
        agrees = None
        spread.append("The lowest two are within the seed spread: not decided here.")
    return Finding("Training loss", paper, " ".join([text, *spread]), agrees)


def cramers_v_finding(chosen: dict[str, ModelSummary]) -> Finding:
    paper = "higher Cramér's V between adjacent layers for Omni-router, strongest in deep layers"
    pair = _routed_pair(chosen)
    if pair is None:
        return Finding("Cramér's V", paper, _no_routing(chosen), None)
    switch, omni = pair
    switch_v, omni_v = switch.routing.mean_cramers_v, omni.routing.mean_cramers_v  # type: ignore[union-attr]
    agrees = omni_v > switch_v
    text = (
        f"Mean Cramér's V over adjacent layer pairs: {omni.name} {omni_v:.3f}, "
        f"{switch.name} {switch_v:.3f}; "
        + ("higher for Omni-router, as in the paper." if agrees else "not higher for Omni-router.")
    )
    omni_deep, switch_deep = _deep_half(omni), _deep_half(switch)
    if omni_deep is not None and switch_deep is not None:
        text += (
            f" Over the deeper half of the layer pairs: {omni.name} {omni_deep:.3f}, "
            f"{switch.name} {switch_deep:.3f}"
            + ("." if omni_deep > switch_deep else ", not higher for Omni-router there.")
        )
    return Finding("Cramér's V", paper, text + ONE_SEED_NOTE, agrees, one_seed=True)


def permutation_finding(chosen: dict[str, ModelSummary]) -> Finding:
    paper = "random expert permutation raises Omni-router's WER more than Switch's"
    pair = _routed_pair(chosen)
    if pair is None or not pair[1].routing.probabilities:  # type: ignore[union-attr]
        return Finding("Permutation test", paper, _no_routing(chosen), None)
    switch, omni = pair
    probability = omni.routing.probabilities[-1]  # type: ignore[union-attr]
    switch_change = switch.routing.largest_change_percent  # type: ignore[union-attr]
    omni_change = omni.routing.largest_change_percent  # type: ignore[union-attr]
    if math.isnan(switch_change) or math.isnan(omni_change):
        text = "The relative change is undefined: an unpermuted WER is 0."
        return Finding("Permutation test", paper, text, None)
    agrees = omni_change > switch_change
    if agrees:
        verdict = "Omni-router is the more sensitive, as in the paper."
    elif omni_change == switch_change:
        verdict = "the same change for both: the test does not separate them."
    else:
        verdict = "Omni-router is the less sensitive."
    text = (
        f"Relative WER change with a random expert at p = {probability:g}: "
        f"{omni.name} {omni_change:+.1f}%, {switch.name} {switch_change:+.1f}%; {verdict}"
    )
    return Finding("Permutation test", paper, text + ONE_SEED_NOTE, agrees, one_seed=True)


def spike_finding(chosen: dict[str, ModelSummary]) -> Finding:
    paper = (
        "Switch training shows early loss spikes and instability (conversational data, larger "
        "models) and Omni-router trains stably; on read LibriSpeech Switch trained stably too"
    )
    if "switch" not in chosen or "omni" not in chosen:
        return Finding("Loss spikes", paper, _only(chosen, "stability comparison"), None)
    counts = {family: _instability(chosen[family]) for family in chosen}
    parts = [
        f"{chosen[family].name} {spikes:.2g} spike(s) and {skipped:.2g} skipped step(s) per run"
        for family, (spikes, skipped) in counts.items()
    ]
    switch, omni = sum(counts["switch"]), sum(counts["omni"])
    if switch == omni == 0:
        verdict = "no run was unstable by this measure, so the paper's Switch instability did "
        verdict += "not appear (nor does it on read speech in the paper)."
        agrees = None
    elif switch == omni:
        verdict = "Switch and Omni-router were alike by this measure: it does not separate them."
        agrees = None
    else:
        agrees = switch > omni
        verdict = (
            "Switch was the less stable, as in the paper."
            if agrees
            else "Switch was not the less stable."
        )
    text = f"Loss spikes ({SPIKE_RULE}): "
    return Finding("Loss spikes", paper, text + "; ".join(parts) + "; " + verdict, agrees)


def expert_count_finding(models: Sequence[ModelSummary]) -> Finding:
    """Table II: the average WER of each MoE family at its fewest and its most experts (the
    first model of each family and expert count)."""
    paper = (
        "with 8 experts instead of 2 (Table II), Switch's WER rises (4.4 → 8.6% on LibriSpeech "
        "test-clean) while Omni-router's falls (4.2 → 3.9%)"
    )
    by_count: dict[str, dict[int, ModelSummary]] = {}
    for model in models:
        if model.family in ("switch", "omni") and model.num_experts:
            by_count.setdefault(model.family, {}).setdefault(model.num_experts, model)
    if any(len(by_count.get(family, {})) < 2 for family in ("switch", "omni")):
        text = "Not measured: it needs Switch and Omni-router models at two expert counts or more."
        return Finding("Experts (Table II)", paper, text, None)
    sentences: list[str] = []
    changes: dict[str, float] = {}
    beyond: dict[str, bool | None] = {}
    for family in ("switch", "omni"):
        counts = by_count[family]
        fewest, most = counts[min(counts)], counts[max(counts)]
        ordered = [counts[count] for count in sorted(counts)]
        changes[family] = most.average_wer.mean - fewest.average_wer.mean
        beyond[family] = _beyond_spread(most.average_wer, fewest.average_wer)
        sentences.append(
            f"{family}: "
            + ", ".join(
                f"{m.num_experts} experts ({m.total_parameters / 1e6:.2f}M) "
                f"{_format(m.average_wer, '%')}"
                for m in ordered
            )
            + f"; {most.num_experts} against {fewest.num_experts} experts: "
            + f"{changes[family]:+.2f} WER points"
            + "."
        )
        sentences += _spread_sentences([most, fewest], lambda m: m.average_wer, "WER points")
    agrees: bool | None = changes["switch"] > 0 and changes["omni"] <= 0
    verdict = (
        "Switch degrades with more experts and Omni-router does not, as in the paper."
        if agrees
        else "Not the paper's pattern (Switch worse with more experts, Omni-router not)."
    )
    if all(value is False for value in beyond.values()):
        agrees = None
        verdict = "Both changes are within the seed spread: the sweep does not decide it."
    elif None in beyond.values():
        verdict += " With one seed, the differences may be run-to-run variation."
    return Finding("Experts (Table II)", paper, " ".join([*sentences, verdict]), agrees)


def possible_explanations(circumstances: Circumstances) -> list[str]:
    """Ways this experiment differs from the paper's that could explain a different result."""
    reasons = []
    if circumstances.best_average_wer > UNDERTRAINED_WER:
        reasons.append(
            f"barely trained models: the best average test WER is "
            f"{circumstances.best_average_wer:.0f}%, so the models hardly differ yet"
        )
    if circumstances.largest_parameters < PAPER_SMALLEST_PARAMETERS:
        reasons.append(
            f"small models: at most {circumstances.largest_parameters / 1e6:.2g}M parameters, "
            "against 84M–200M-parameter dense trunks in the paper"
        )
    if circumstances.max_steps < PAPER_MAX_STEPS / 10:
        reasons.append(
            f"short training: {circumstances.max_steps} steps, against up to 1M in the paper"
        )
    if circumstances.synthetic_corpus:
        reasons.append(
            f"synthetic speech: {circumstances.train_hours:.2g} h of text-to-speech training "
            "audio, against a large pseudo-labelled set of real speech in the paper"
        )
    if circumstances.fewest_seeds < 3:
        reasons.append(
            f"few seeds: {circumstances.fewest_seeds} per model at the least, too few to tell "
            "small differences from run-to-run variation"
        )
    if circumstances.test_hours < 1:
        reasons.append(
            f"small test sets: {circumstances.test_hours:.2g} h of test audio in all, so a few "
            "words change a WER visibly"
        )
    return reasons


# ---------------------------------------------------------------- helpers


def _format(values: SeedValues, unit: str) -> str:
    text = f"{values.mean:.2f}"
    if values.std is not None:
        text += f" ± {values.std:.2f}"
    return f"{text}{unit} ({values.count} seed{'s' if values.count > 1 else ''})"


def _ordering(
    models: Sequence[ModelSummary], value: Callable[[ModelSummary], SeedValues], unit: str
) -> str:
    """'a 5.00% (1 seed) > b 4.00% (1 seed)', highest first, '=' for equal means."""
    text = f"{models[0].name} {_format(value(models[0]), unit)}"
    for previous, model in itertools.pairwise(models):
        relation = ">" if value(previous).mean > value(model).mean else "="
        text += f" {relation} {model.name} {_format(value(model), unit)}"
    return text


def _spread_sentences(
    models: Sequence[ModelSummary], value: Callable[[ModelSummary], SeedValues], unit: str
) -> list[str]:
    sentences = []
    for first, second in itertools.pairwise(models):
        a, b = value(first), value(second)
        gap = abs(a.mean - b.mean)
        pair = f"{first.name} vs {second.name}: {gap:.2f} {unit}"
        beyond = _beyond_spread(a, b)
        if beyond is None:
            single = [m.name for m, v in ((first, a), (second, b)) if v.std is None]
            sentences.append(f"{pair}, seed spread unknown (one seed of {' and '.join(single)}).")
        elif beyond:
            sentences.append(f"{pair}, more than the seed spread ({a.std:.2f} + {b.std:.2f}).")
        else:
            sentences.append(f"{pair}, within the seed spread ({a.std:.2f} + {b.std:.2f}).")
    return sentences


def _all_beyond_spread(
    models: Sequence[ModelSummary], value: Callable[[ModelSummary], SeedValues]
) -> bool:
    """False when some adjacent pair of `models` differs by no more than its seed spread
    (a pair of unknown spread, one seed, does not count against: its sentence says so)."""
    return all(
        _beyond_spread(value(first), value(second)) is not False
        for first, second in itertools.pairwise(models)
    )


def _beyond_spread(a: SeedValues, b: SeedValues) -> bool | None:
    """Whether two means differ by more than the sum of their seed deviations (None: a
    deviation is unknown, one seed)."""
    if a.std is None or b.std is None:
        return None
    return abs(a.mean - b.mean) > a.std + b.std


def _reduction_sentences(
    chosen: dict[str, ModelSummary], averaged_sets: Sequence[str]
) -> list[str]:
    omni = chosen["omni"]
    sentences = []
    for family, paper_value in PAPER_OMNI_REDUCTION.items():
        if family not in chosen:
            continue
        other = chosen[family]
        of_mean = relative_reduction(other.average_wer.mean, omni.average_wer.mean)
        per_set = [
            relative_reduction(_set_mean(other, name), _set_mean(omni, name))
            for name in averaged_sets
        ]
        mean_per_set = (
            statistics.fmean(per_set)  # type: ignore[arg-type]
            if per_set and all(value is not None for value in per_set)
            else None
        )
        per_set_text = signed_percent(mean_per_set, "undefined")
        of_mean_text = signed_percent(of_mean, "undefined")
        sentences.append(
            f"{omni.name} against {other.name}: {per_set_text} mean of the per-set relative "
            f"WER reductions, {of_mean_text} reduction of the mean WER (paper: {paper_value}%)."
        )
    return sentences


def _set_mean(model: ModelSummary, set_name: str) -> float | None:
    values = model.set_wer.get(set_name)
    return None if values is None else values.mean


def _final_losses(model: ModelSummary) -> SeedValues | None:
    finals = [loss.final_loss for loss in model.losses]
    if not finals or any(value is None for value in finals):
        return None
    return SeedValues(tuple(finals))  # type: ignore[arg-type]


def _instability(model: ModelSummary) -> tuple[float, float]:
    """Mean spikes and mean skipped non-finite steps per run."""
    if not model.losses:
        return 0.0, 0.0
    spikes = statistics.fmean(loss.spikes for loss in model.losses)
    skipped = statistics.fmean(loss.skipped_nonfinite for loss in model.losses)
    return spikes, skipped


def _routed_pair(chosen: dict[str, ModelSummary]) -> tuple[ModelSummary, ModelSummary] | None:
    switch, omni = chosen.get("switch"), chosen.get("omni")
    if switch is None or omni is None or switch.routing is None or omni.routing is None:
        return None
    return switch, omni


def _deep_half(model: ModelSummary) -> float | None:
    values = model.routing.adjacent_cramers_v if model.routing else ()
    if len(values) < 2:
        return None
    return statistics.fmean(values[len(values) // 2 :])


def _only(chosen: dict[str, ModelSummary], what: str) -> str:
    families = ", ".join(sorted(chosen)) or "no"
    return f"Only {families} model(s) here: no {what} to make."


def _no_routing(chosen: dict[str, ModelSummary]) -> str:
    missing = [family for family in ("switch", "omni") if family not in chosen]
    if missing:
        return f"No {' or '.join(missing)} model here: nothing to compare."
    return "The routing analysis did not cover both the Switch and the Omni-router model."
