import argparse
import json

import numpy as np
import pytest
import soundfile

from omnirouter.cli import evaluate as cli
from omnirouter.data.features import FeatureConfig
from omnirouter.evaluate.compare import model_names
from omnirouter.evaluate.tables import EvalRow, EvalTable, save_eval_table
from omnirouter.evaluate.transcribe import Transcriber

from .conftest import tiny_model


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="omnirouter")
    cli.register(root.add_subparsers(dest="command", required=True))
    return root


def test_commands_parse():
    args = parser().parse_args(["eval", "exp/omni", "--sets", "dev, test", "--max-duration", "60"])
    assert args.run is cli.run_eval and args.max_duration == 60.0
    assert cli._split(args.sets) == ["dev", "test"]
    args = parser().parse_args(["compare", "a", "b", "--baseline", "a"])
    assert args.run is cli.run_compare and args.experiments == ["a", "b"]
    args = parser().parse_args(["transcribe", "exp", "x.wav", "y.mp3", "--format", "json"])
    assert args.run is cli.run_transcribe and args.audio == ["x.wav", "y.mp3"]
    assert args.chunk_seconds is None


def evaluated_experiment(root, name: str, wers: dict[str, float]):
    experiment = root / name
    rows = tuple(EvalRow(s, "test", 5, 100, round(w), 0, 0, w) for s, w in wers.items())
    save_eval_table(EvalTable(str(experiment), rows, "whisper-english", "1"), experiment / "eval")
    return experiment


def test_compare_reads_experiments(tmp_path, capsys):
    dense = evaluated_experiment(tmp_path, "dense", {"a": 10.0, "b": 20.0})
    omni = evaluated_experiment(tmp_path, "omni", {"a": 8.0, "b": 19.0})
    args = parser().parse_args(
        ["compare", str(omni), str(dense), "--baseline", str(dense), "--out", str(tmp_path / "c")]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "| a | 8.00 | 10.00 | 20.0 |" in printed  # (10 - 8) / 10
    record = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert record["models"] == ["omni", "dense"] and record["baseline"] == "dense"
    assert record["mean_relative_reduction_percent"][0] == pytest.approx((20.0 + 5.0) / 2)


def test_compare_names_runs_of_one_experiment_by_their_distinct_path_endings(tmp_path, capsys):
    """The demo's runs are all called seed0: each is named by as much of its path as tells
    the runs apart."""
    runs = [
        evaluated_experiment(tmp_path, f"exp/demo/{model}/seed0", {"a": wer})
        for model, wer in (("dense", 10.0), ("switch", 9.0), ("omni", 8.0))
    ]
    args = parser().parse_args(["compare", *map(str, runs), "--out", str(tmp_path / "c")])
    assert args.run(args) == 0
    record = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert record["models"] == ["dense/seed0", "switch/seed0", "omni/seed0"]
    assert "| a | 10.00 | 9.00 | 8.00 |" in capsys.readouterr().out
    # Directories of different names keep their own; a model's eval JSON names its directory.
    mixed = [runs[0] / "eval" / "wer.json", evaluated_experiment(tmp_path, "omni", {"a": 8.0})]
    assert model_names(mixed) == ["seed0", "omni"]


def test_compare_names_a_missing_evaluation(tmp_path):
    args = parser().parse_args(["compare", str(tmp_path / "never_evaluated")])
    with pytest.raises(FileNotFoundError, match="omnirouter eval"):
        args.run(args)


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_transcripts_printed_and_failures_reported(tmp_path, tokenizer, capsys, output_format):
    transcriber = Transcriber(tiny_model().eval(), tokenizer, FeatureConfig())
    good = tmp_path / "good.wav"
    soundfile.write(good, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"\x00" * 100)
    status = cli.print_transcripts(transcriber, [str(good), str(bad)], output_format)
    out, err = capsys.readouterr()
    assert status == 1
    assert str(bad) in err and str(good) not in err
    expected_text = transcriber.transcribe(good).text
    if output_format == "json":
        records = json.loads(out)
        assert records[0]["text"] == expected_text and records[0]["duration"] == 1.0
        assert str(bad) in records[1]["error"]
    else:
        assert out == f"{good}: {expected_text}\n"
    assert cli.print_transcripts(transcriber, [str(good)], "text") == 0
