"""The whole analysis on tiny models: every figure and the page are written, and redrawing
from the saved records gives the same statistics."""

import argparse
import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.measure import Subject, measure
from omnirouter.analysis.permutation import OnOutput
from omnirouter.analysis.results import AnalysisResults, load_results, save_results
from omnirouter.analysis.summary import summarize, summary_to_dict
from omnirouter.analysis.training import read_loss_curve
from omnirouter.cli import analyze as cli
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.experiment.routing import AnalysisOutputs, analyze, write_outputs
from omnirouter.model import RoutingOverride

from .standins import make_batches, subject
from .test_training import train_line, valid_line

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONFIG = AnalysisConfig(num_shown_utterances=2, permutation_probabilities=[0.0, 0.3])


def write_metrics(experiment_dir: Path, losses: list[float]) -> Path:
    """An experiment directory whose metrics.jsonl holds these training losses."""
    lines = [train_line(10 * step, loss) for step, loss in enumerate(losses)]
    lines.append(valid_line(10, 0.9))
    experiment_dir.mkdir()
    (experiment_dir / "metrics.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    return experiment_dir


@pytest.fixture(scope="module")
def analysed(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: Tokenizer
) -> tuple[AnalysisResults, AnalysisOutputs]:
    directory = tmp_path_factory.mktemp("analysis")
    runs = tmp_path_factory.mktemp("runs")
    batches = make_batches(num_utterances=6, batch_size=3)
    subjects = [
        subject("switch", "switch", batches, tokenizer, seed=1),
        subject("omni", "omni", batches, tokenizer, seed=2),
        subject("dense", "dense", batches, tokenizer, seed=3),
    ]
    curves = [
        read_loss_curve(item.name, write_metrics(runs / item.name, losses))
        for item, losses in zip(
            subjects, ([9.0, 5.0, 7.0, 3.0], [9.0, 4.0, 2.5, 2.0], [9, 6, 4, 3])
        )
    ]
    subjects = [
        dataclasses.replace(item, loss_curve=curve) for item, curve in zip(subjects, curves)
    ]
    results = measure(subjects, CONFIG, command="omnirouter analyze tiny")
    save_results(results, directory)
    return results, write_outputs(results, CONFIG.summary, directory)


def test_every_figure_and_the_page_are_written(analysed) -> None:
    _, outputs = analysed
    figures = outputs.figures.all()
    assert len(figures) == 7  # Figs. 2-6, expert load, silence/speech roles
    for path in figures:
        assert path.read_bytes().startswith(PNG_SIGNATURE), path
    markdown = outputs.page.markdown.read_text()
    for path in figures:
        assert f"]({path.name})" in markdown
    # Beyond the paper: the expert-offloading study, its figure and section.
    assert outputs.offload is not None and outputs.offload.is_file()
    offload_figure = outputs.offload.parent / "offload_hit_rate.png"
    assert offload_figure.read_bytes().startswith(PNG_SIGNATURE)
    assert "## Expert offloading: caching and prefetching" in markdown
    html = outputs.page.html.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == len(figures) + 1
    assert "omnirouter analyze tiny" in markdown
    assert outputs.statistics.is_file() and outputs.results.is_file()


def test_measured_results_hold_routing_only_for_moe_models(analysed) -> None:
    results, _ = analysed
    by_name = {model.name: model for model in results.models}
    assert by_name["dense"].records is None and by_name["dense"].permutation is None
    assert [model.name for model in results.moe_models] == ["switch", "omni"]
    assert len(results.shown_cut_ids) == 2
    for model in results.moe_models:
        assert model.records is not None and model.permutation is not None
        assert set(results.shown_cut_ids) <= set(model.records.spectrograms)
        assert model.records.cut_ids == tuple(f"utt-{index:03d}" for index in range(6))
        assert model.permutation.wers[0] == model.baseline_wer
        assert model.permutation.probabilities == (0.0, 0.3)


def test_cli_redraws_from_records_with_the_same_statistics(analysed, tmp_path: Path) -> None:
    results, outputs = analysed
    copy = tmp_path / "copy"
    shutil.copytree(outputs.directory, copy)
    for path in [*outputs.figures.all(), outputs.statistics]:
        (copy / path.name).unlink()
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", "unused-experiment", "--out", str(copy), "--from-records"])
    assert args.run(args) == 0

    assert json.loads((copy / "statistics.json").read_text()) == json.loads(
        outputs.statistics.read_text()
    )
    for path in outputs.figures.all():
        assert (copy / path.name).is_file()
    # And directly: summaries of reloaded records equal those of the records in memory.
    reloaded = load_results(copy)
    for before, after in zip(results.moe_models, reloaded.moe_models):
        assert json.dumps(summary_to_dict(summarize(before.records, CONFIG.summary))) == json.dumps(
            summary_to_dict(summarize(after.records, CONFIG.summary))
        )
        assert after.permutation == before.permutation
        # The analysis keeps of a run's metrics the training curve it draws (Fig. 6).
        assert (after.loss_curve.steps, after.loss_curve.ctc_loss) == (
            before.loss_curve.steps,
            before.loss_curve.ctc_loss,
        )


def test_dense_only_analysis_writes_a_page_without_routing_figures(
    analysed, tmp_path: Path
) -> None:
    results, _ = analysed
    dense_only = dataclasses.replace(
        results, models=tuple(model for model in results.models if not model.is_moe)
    )
    outputs = write_outputs(dense_only, CONFIG.summary, tmp_path)
    assert [path.name for path in outputs.figures.all()] == ["fig6_training_loss.png"]
    assert "No model has MoE layers" in outputs.page.markdown.read_text()


def test_cli_parses_its_options() -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "analyze",
            "exp/a",
            "--compare",
            "exp/b",
            "exp/c",
            "--permutation-probabilities",
            "0,0.25,1",
            "--contingency-layers",
            "3,4",
            "--set",
            "test",
        ]
    )
    assert args.compare == ["exp/b", "exp/c"]
    assert args.permutation_probabilities == [0.0, 0.25, 1.0]
    assert args.contingency_layers == [3, 4]
    assert args.set_name == "test"
    defaults = parser.parse_args(["analyze", "exp/a"])
    assert defaults.permutation_probabilities == [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    for bad in (["--permutation-probabilities", "0,1.5"], ["--contingency-layers", "3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["analyze", "exp/a", *bad])


def test_measure_keeps_names_unique_and_shows_a_seeded_choice() -> None:
    def no_routing(override: RoutingOverride | None, on_output: OnOutput | None) -> float:
        # A dense model's set, scored without any batch to report.
        return 0.5

    cut_ids = tuple(f"cut-{index}" for index in range(20))
    subjects = [
        Subject("run", "dense", "", 4, cut_ids, no_routing),
        Subject("run", "dense", "", 4, cut_ids, no_routing),
    ]
    config = AnalysisConfig(num_shown_utterances=3, seed=5)
    results = measure(subjects, config)
    assert [model.name for model in results.models] == ["run", "run-2"]
    assert results.shown_cut_ids == measure(subjects[:1], config).shown_cut_ids
    assert len(set(results.shown_cut_ids)) == 3 and set(results.shown_cut_ids) <= set(cut_ids)


def test_a_checkpoint_file_needs_an_output_directory(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    with pytest.raises(ValueError, match="--out"):
        analyze(checkpoint, CONFIG)
