"""`configs/experiments/tiny.yaml` from nothing to the report, then once more: the second run
finds every stage done and retrains nothing."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from omnirouter.experiment.config import ExperimentConfig, load_experiment_config
from omnirouter.experiment.pipeline import ExperimentOutputs, run_experiment

pytestmark = [pytest.mark.slow, pytest.mark.corpus]

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "experiments" / "tiny.yaml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_LABELS = ["dense/seed0", "dense/seed1", "switch/seed0", "omni/seed0"]


@dataclass(frozen=True)
class Experiment:
    root: Path
    config: ExperimentConfig
    first_stages: dict
    second_stages: dict
    third_stages: dict  # with an evaluation device this machine lacks
    checkpoint_times: dict[Path, int]
    outputs: ExperimentOutputs  # of the second run (the third rewrites the report alike)


def tiny_config(root: Path) -> ExperimentConfig:
    return load_experiment_config(
        TINY,
        [
            f"corpus.corpus_dir={root / 'corpus'}",
            f"corpus.synth_config={REPO / 'configs' / 'data' / 'builtin-tiny.yaml'}",
            f"exp_root={root / 'exp'}",
            f"report_dir={root / 'report'}",
        ],
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    root = tmp_path_factory.mktemp("experiment")
    config = tiny_config(root)
    first = run_experiment(config, command="omnirouter experiment tiny.yaml")
    first_stages = json.loads(first.stages.read_text())
    times = {path: path.stat().st_mtime_ns for path in (root / "exp").rglob("*.pt")}
    second = run_experiment(config, command="omnirouter experiment tiny.yaml # again")
    second_stages = json.loads(second.stages.read_text())
    # Once more where the evaluation device does not exist (a report rebuilt on a laptop from a
    # GPU's runs): every evaluation is up to date, so no device is chosen and nothing fails.
    elsewhere = config if torch.cuda.is_available() else replace(config, eval_device="cuda")
    third = run_experiment(elsewhere, command="omnirouter experiment tiny.yaml # elsewhere")
    third_stages = json.loads(third.stages.read_text())
    return Experiment(root, config, first_stages, second_stages, third_stages, times, second)


def eval_wers(root: Path, label: str, metric: str = "wer") -> dict[str, float]:
    """WER (or CER) per set of one run, read straight from its eval table's JSON."""
    table = json.loads((root / "exp" / label / "eval" / "wer.json").read_text())
    return {row["set_name"]: row[f"{metric}_percent"] for row in table["rows"]}


def test_every_report_file_is_written(experiment: Experiment) -> None:
    report = experiment.outputs.report_dir
    for name in ("README.md", "index.html", "stages.json", "experiment.json", "config.yaml"):
        assert (report / name).is_file(), name
    for suffix in ("md", "csv", "json"):
        assert (report / f"compare.{suffix}").is_file()
    readme = experiment.outputs.readme.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert "figures/training_loss.png" in linked and "figures/learning_curves.png" in linked
    training = json.loads((report / "experiment.json").read_text())["models"][0]["training"][0]
    assert training["valid_steps"] and len(training["dev_wer_percent"]) == len(
        training["valid_steps"]
    )
    assert all(loss is not None and loss > 0 for loss in training["dev_ctc_loss_per_token"])
    assert training["final_ctc_loss_per_token"] > 0
    assert any(link.startswith("routing/fig5_cramers_v") for link in linked)
    for link in linked:
        assert (report / link).read_bytes().startswith(PNG_SIGNATURE), link
    html = experiment.outputs.html.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == len(linked)
    # The folder is commit-able: no checkpoints, no audio.
    assert not [path for path in report.rglob("*") if path.suffix in (".pt", ".wav", ".npz")]
    headings = ("Findings", "Corpus", "Models", "Word error rates", "Character error rates")
    headings += ("Decoding with a word LM",)
    beyond = ("Expert offloading: caching and prefetching", "Routed proposals per frame")
    for heading in (*headings, "Training", *beyond, "Software"):
        assert f"## {heading}" in readme
    assert "routing/offload_hit_rate.png" in linked
    assert "omnirouter experiment tiny.yaml" in readme
    # The corpus table says which conditions each set holds, and that the tests' are new.
    assert "| conditions |" in readme and "; codecs " in readme
    assert "No noise signal, room, band limit or codec of the training sets occurs" in readme
    assert "openai-whisper" in readme


def test_first_run_does_every_task_once(experiment: Experiment) -> None:
    tasks = experiment.first_stages["tasks"]
    by_stage: dict[str, list[str]] = {}
    for task in tasks:
        by_stage.setdefault(task["stage"], []).append(task["task"])
        assert task["last_status"] == "ran"
        assert task["ended"] >= task["started"]
    # tiny.yaml trains two runs at a time in worker processes: they finish in any order.
    assert sorted(by_stage["train"]) == sorted(RUN_LABELS)
    assert by_stage["eval"] == RUN_LABELS
    assert by_stage["corpus"] == ["corpus", "lm", "features"]  # tiny.yaml reads stored features
    assert by_stage["lm"] == ["dense/seed0", "switch/seed0", "omni/seed0"]  # first seeds
    from lhotse import CutSet

    for name in ("train", "dev"):
        cuts = CutSet.from_file(experiment.root / "corpus" / f"cuts_{name}.jsonl.gz")
        assert all(cut.has_features for cut in cuts), name
    for stage in ("tokenizer", "analysis", "compare", "report"):
        assert len(by_stage[stage]) == 1, stage
    assert by_stage["proposals"] == ["switch/seed0", "omni/seed0"]  # the analysed MoE models
    sweep_path = experiment.root / "exp" / "proposals" / "tiny" / "omni" / "sweep.json"
    sweep = json.loads(sweep_path.read_text())
    assert [point["count"] for point in sweep["points"]] == [1, 2]
    # Each run's train.log holds its own training only.
    log = (experiment.root / "exp" / "dense" / "seed0" / "train.log").read_text()
    assert "dense model" in log
    assert "switch model" not in log


def test_second_run_skips_every_stage(experiment: Experiment) -> None:
    document = experiment.second_stages
    assert len(document["invocations"]) == 2
    assert document["invocations"][1]["ran"] == []
    first = {(task["stage"], task["task"]): task for task in experiment.first_stages["tasks"]}
    for task in document["tasks"]:
        assert task["last_status"] == "skipped", task
        # The times of the run that did the work are kept.
        assert task["seconds"] == first[(task["stage"], task["task"])]["seconds"]
    now = {path: path.stat().st_mtime_ns for path in (experiment.root / "exp").rglob("*.pt")}
    assert now == experiment.checkpoint_times


def test_a_missing_evaluation_device_is_only_an_error_when_there_is_evaluating_to_do(
    experiment: Experiment,
) -> None:
    ran = experiment.third_stages["invocations"][2]["ran"]
    # The changed config rewrites the comparison and the report; no run is trained or evaluated.
    assert {entry.split()[0] for entry in ran} <= {"compare", "report"}
    evaluations = [task for task in experiment.third_stages["tasks"] if task["stage"] == "eval"]
    assert [task["task"] for task in evaluations] == RUN_LABELS
    assert all(task["last_status"] == "skipped" for task in evaluations)


@pytest.mark.parametrize(
    ("metric", "heading"), [("wer", "Word error rates"), ("cer", "Character error rates")]
)
def test_wer_and_cer_tables_are_the_mean_and_spread_of_the_seeds(
    experiment: Experiment, metric: str, heading: str
) -> None:
    root = experiment.root
    dense = [eval_wers(root, "dense/seed0", metric), eval_wers(root, "dense/seed1", metric)]
    numbers = json.loads((experiment.outputs.report_dir / "experiment.json").read_text())
    reported = {model["name"]: model for model in numbers["models"]}
    readme = experiment.outputs.readme.read_text()
    assert "Seeds per model: dense 2, switch 1, omni 1" in readme
    models = readme[readme.index("## Models") :]
    assert "seeds (their values)" in models and "| 2 (0, 1) |" in models  # a count, then values
    for set_name in dense[0]:
        values = [seeds[set_name] for seeds in dense]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert reported["dense"][f"{metric}_percent"][set_name]["mean"] == pytest.approx(mean)
        assert reported["dense"][f"{metric}_percent"][set_name]["std"] == pytest.approx(std)
        table = readme[readme.index(f"## {heading}") :]
        row = next(line for line in table.splitlines() if line.startswith(f"| {set_name} "))
        assert f"{mean:.2f} ± {std:.2f}" in row


def test_relative_reductions_follow_the_hand_formula(experiment: Experiment) -> None:
    root = experiment.root
    numbers = json.loads((experiment.outputs.report_dir / "experiment.json").read_text())
    test_sets = numbers["averaged_sets"]
    dense = {
        name: statistics.fmean([eval_wers(root, f"dense/seed{seed}")[name] for seed in (0, 1)])
        for name in test_sets
    }
    omni = eval_wers(root, "omni/seed0")
    per_set = [100 * (dense[name] - omni[name]) / dense[name] for name in test_sets]
    mean_dense = statistics.fmean(dense.values())
    mean_omni = statistics.fmean(omni[name] for name in test_sets)
    reductions = numbers["relative_reduction_percent"]
    assert reductions["mean_of_per_set_reductions"]["omni"] == pytest.approx(
        statistics.fmean(per_set)
    )
    assert reductions["reduction_of_mean_wer"]["omni"] == pytest.approx(
        100 * (mean_dense - mean_omni) / mean_dense
    )


def test_parameter_counts_follow_the_model_shapes(experiment: Experiment) -> None:
    """D = 32, F = 64, 4 blocks, 4 experts, top-1: an expert is D·F + F + F·D + D weights."""
    numbers = json.loads((experiment.outputs.report_dir / "experiment.json").read_text())
    models = {model["name"]: model for model in numbers["models"]}
    expert, layers, experts, router = 32 * 64 + 64 + 64 * 32 + 32, 4, 4, 32 * 4
    dense = models["dense"]["total_parameters"]
    assert models["dense"]["active_parameters"] == dense
    extra_experts = layers * (experts - 1) * expert
    assert models["switch"]["total_parameters"] == dense + extra_experts + layers * router
    assert models["omni"]["total_parameters"] == dense + extra_experts + router
    assert models["switch"]["active_parameters"] == dense + layers * router
    assert models["omni"]["active_parameters"] == dense + router


def test_findings_order_the_models_by_their_measured_wer(experiment: Experiment) -> None:
    root = experiment.root
    test_sets = json.loads((experiment.outputs.report_dir / "experiment.json").read_text())[
        "averaged_sets"
    ]
    averages = {
        "dense": statistics.fmean(
            statistics.fmean(eval_wers(root, f"dense/seed{seed}")[name] for name in test_sets)
            for seed in (0, 1)
        ),
        "switch": statistics.fmean(eval_wers(root, "switch/seed0")[name] for name in test_sets),
        "omni": statistics.fmean(eval_wers(root, "omni/seed0")[name] for name in test_sets),
    }
    readme = experiment.outputs.readme.read_text()
    finding = next(line for line in readme.splitlines() if line.startswith("WER: "))
    measured = finding.split("Here: ", 1)[1]
    positions = sorted(averages, key=lambda name: measured.index(f" {name} "))
    assert [averages[name] for name in positions] == sorted(averages.values(), reverse=True)


def test_lm_tables_hold_each_first_seed_greedy_and_tuned_beam_search(
    experiment: Experiment,
) -> None:
    root = experiment.root
    numbers = json.loads((experiment.outputs.report_dir / "experiment.json").read_text())
    lm = numbers["lm_decoding"]
    assert lm["sources"] == [str(root / "corpus" / "training_text.txt")]
    tuning = json.loads((root / "corpus" / "lm" / "tuning.json").read_text())
    readme = experiment.outputs.readme.read_text()
    section = readme[readme.index("## Decoding with a word LM") :]
    assert [model["model"] for model in lm["models"]] == ["dense", "switch", "omni"]
    for model in lm["models"]:
        label = f"{model['model']}/seed0"
        table = json.loads((root / "exp" / label / "eval-lm" / "wer.json").read_text())
        assert table["extra"]["search"] == model["search"] == "lexicon"
        assert table["extra"]["beam_size"] == 8
        tuned = tuning[f"../../exp/{label}"]["lexicon"]
        assert tuned["set_name"] == "dev"
        assert (model["lm_weight"], model["word_score"]) == (
            tuned["lm_weight"],
            tuned["word_score"],
        )
        assert tuned["lm_weight"] in (0.5, 1.0) and tuned["word_score"] in (0.0, 1.0)
        beam = {row["set_name"]: row["wer_percent"] for row in table["rows"]}
        assert {name: rates["wer_percent"] for name, rates in model["lm"].items()} == beam
        assert {name: rates["wer_percent"] for name, rates in model["greedy"].items()} == (
            eval_wers(root, label)
        )
        greedy, with_lm = eval_wers(root, label)["test"], beam["test"]
        assert f"{greedy:.2f} → {with_lm:.2f}" in section


def test_lm_decoding_is_redone_for_another_grid_beam_or_search(experiment: Experiment) -> None:
    from omnirouter.experiment.config import plan_runs
    from omnirouter.experiment.lm_stage import lm_decoding_pending, lm_pending, lm_runs

    config = experiment.config
    sets = [
        row["set_name"]
        for row in json.loads(
            (experiment.root / "exp" / "dense" / "seed0" / "eval-lm" / "wer.json").read_text()
        )["rows"]
    ]
    run = lm_runs(plan_runs(config))[0]
    assert lm_pending(config) is None and lm_decoding_pending(config, run, sets) is None
    changes = {
        "grid": replace(config.lm, lm_weights=[0.5]),
        "beam": replace(config.lm, beam_size=16),
        "search": replace(config.lm, lexicon=False),
    }
    for what, lm in changes.items():
        assert lm_decoding_pending(replace(config, lm=lm), run, sets) is not None, what
    assert lm_decoding_pending(config, run, sets[:1]) == "decoded other sets"
    assert lm_pending(replace(config, lm=replace(config.lm, order=2))) is not None
