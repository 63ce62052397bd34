"""`omnirouter eval EXP --proposals 1,2`: a sweep on a trained experiment, its files and cost."""

import json
from pathlib import Path

import pytest

from omnirouter.cli import main

from ..analysis.test_experiments import tiny_experiment, tone_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_corpus(tmp_path_factory.mktemp("tones"))


def test_sweep_writes_each_k_and_k1_matches_ordinary_eval(corpus: Path) -> None:
    experiment = tiny_experiment(corpus, "switch", corpus / "switch-run")
    common = ["--sets", "dev", "--normalizer", "none", "--device", "cpu"]
    assert main(["eval", str(experiment), *common]) == 0
    plain = json.loads((experiment / "eval" / "wer.json").read_text())
    command = [
        "eval",
        str(experiment),
        *common,
        "--proposals",
        "1,2",
        "--proposal-temperature",
        "1",
    ]
    assert main(command) == 0
    directory = experiment / "eval" / "proposals-gumbel-t1-probability"
    sweep = json.loads((directory / "sweep.json").read_text())
    assert [point["count"] for point in sweep["points"]] == [1, 2]
    assert sweep["points"][0]["relative_cost"] == 1.0
    assert all(point["seconds"] > 0 for point in sweep["points"])
    plain_dev = next(row for row in plain["rows"] if row["set_name"] == "dev")
    for metric in ("wer", "cer"):
        swept = 100 * sweep["points"][0]["sets"]["dev"][metric]
        assert swept == pytest.approx(plain_dev[f"{metric}_percent"])
    for count in (1, 2):
        assert (directory / f"k{count}" / "wer.md").is_file()
    markdown = (directory / "sweep.md").read_text()
    assert "--proposals 1,2" in markdown and "| 2 |" in markdown


def test_dense_models_are_refused(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = tiny_experiment(corpus, "dense", corpus / "dense-run")
    assert main(["eval", str(experiment), "--proposals", "2", "--device", "cpu"]) != 0
    assert "dense model" in capsys.readouterr().err


def test_bad_counts_are_refused(corpus: Path) -> None:
    with pytest.raises(SystemExit):
        main(["eval", str(corpus), "--proposals", "0,2"])
