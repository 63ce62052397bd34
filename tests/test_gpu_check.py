"""The GPU check (`make gpu-check`): one line and success without CUDA, the whole check with the
CPU standing in for the GPU, and the threshold of its transcript comparison."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from omnirouter.data.corpus import cuts_path
from omnirouter.train.metrics import read_metrics
from tests.train.conftest import tiny_corpus  # noqa: F401  (the training tests' session corpus)

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports moe_layer and train_step
    spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_in_one_line_and_succeeds(
    gpu_check, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert captured.out.startswith(f"gpu-check: no CUDA device here (torch {torch.__version__}")
    assert "cuda available: False" in captured.out
    assert captured.err == ""


def test_the_whole_check_passes_with_the_cpu_standing_in(
    gpu_check,
    tiny_corpus: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = ["--device", "cpu", "--work-dir", str(tmp_path), "--corpus", str(tiny_corpus)]
    command += ["--frames", "64", "--model-dim", "16", "--ffn-dim", "32", "--experts", "2", "4"]
    command += ["--repeats", "2", "--size", "demo", "--steps", "6", "--log-every", "1"]
    command += ["--batch-seconds", "30", "--workers", "0"]
    assert gpu_check.main(command) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "gpu-check: PASS"
    assert [line.split()[0] for line in lines[-4:-1]] == ["PASS"] * 3

    # One row per expert count: dense time, loop and grouped_mm times with their ratios, and
    # grouped_mm's error against fp32 within bf16's.
    rows = [line.split("|") for line in lines if re.match(r"\s+[24] \|", line)]
    assert [int(row[0]) for row in rows] == [2, 4]
    for row in rows:
        ratios = [float(cell.split()[-1].rstrip("x")) for cell in row[2:4]]
        assert all(ratio > 0 for ratio in ratios)
        assert 0 <= float(row[4].strip().rstrip("%")) < 4

    # The loss curve printed is the trainer's own record of every step.
    records = read_metrics(tmp_path / "exp").train
    assert [record.step for record in records] == list(range(1, 7))
    printed = {int(line.split()[0]): float(line.split()[1]) for line in lines if _is_loss_row(line)}
    assert printed == pytest.approx({r.step: r.ctc_loss for r in records}, abs=1e-3)
    assert (tmp_path / "exp" / "checkpoints" / "step-00000006.pt").is_file()

    # Both decodes ran in fp32 on the CPU here, over every dev utterance: identical.
    dev_utterances = len(CutSet.from_file(cuts_path(tiny_corpus, "dev")))
    assert f"transcripts identical on {dev_utterances} of {dev_utterances} utterances" in lines
    for label in ("device", "reference"):  # evaluate_checkpoint's table of each decode
        table = json.loads((tmp_path / "exp" / f"eval-{label}" / "wer.json").read_text())
        assert table["rows"][0]["num_utterances"] == dev_utterances
        assert (table["extra"]["step"], table["extra"]["device"]) == (6, "cpu")


def _is_loss_row(line: str) -> bool:
    cells = line.split()
    return len(cells) == 4 and cells[0].isdigit() and cells[1].replace(".", "").isdigit()


REFERENCE = {"a": "the cat sat", "b": "on the mat", "c": "a dog ran", "d": "far away"}


def test_transcripts_are_judged_by_how_many_differ_and_by_how_much(gpu_check) -> None:
    judge = gpu_check.judge_transcripts
    assert judge(dict(REFERENCE), REFERENCE, max_mismatches=0, char_tolerance=0.0).passed

    # One character of eleven (9%), and "the" read as "a" (3 edits of 10 characters).
    close = {**REFERENCE, "a": "the cat sad", "b": "on a mat"}
    differences = gpu_check.transcript_differences(close, REFERENCE)
    assert [(d.cut_id, d.edits, d.characters) for d in differences] == [("a", 1, 11), ("b", 3, 10)]
    assert judge(close, REFERENCE, max_mismatches=0, char_tolerance=0.3).passed
    strict = judge(close, REFERENCE, max_mismatches=1, char_tolerance=0.0)
    assert not strict.passed
    assert "a (1/11), b (3/10)" in strict.summary
    assert not judge(close, REFERENCE, max_mismatches=0, char_tolerance=0.2).passed  # b: 30%
    assert judge(close, REFERENCE, max_mismatches=1, char_tolerance=0.2).passed

    # Three utterances wholly different where two may be: a failure that names them.
    wrong = {**REFERENCE, "b": "xxxxxxxxxx", "c": "", "d": "nothing like it"}
    verdict = judge(wrong, REFERENCE, max_mismatches=2, char_tolerance=0.25)
    assert not verdict.passed
    assert "differ by more on 3 (at most 2 may): b (10/10), c (9/9), d (" in verdict.summary
    assert judge(wrong, REFERENCE, max_mismatches=3, char_tolerance=0.25).passed

    # An utterance that one decode lacks fails the check whatever the threshold.
    missing = {key: text for key, text in REFERENCE.items() if key != "d"}
    verdict = judge(missing, REFERENCE, max_mismatches=4, char_tolerance=1.0)
    assert not verdict.passed
    assert verdict.summary == "utterances only one decode has: d"
    assert not judge({}, {}, max_mismatches=0, char_tolerance=0.0).passed
