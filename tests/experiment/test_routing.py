"""`omnirouter offload` refuses a dense model before it reads or decodes anything."""

from pathlib import Path

import pytest

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.cli import main
from omnirouter.config import save_config
from omnirouter.evaluate import model_file
from omnirouter.experiment import routing
from omnirouter.train import checkpoint as ckpt
from omnirouter.train.config import RunConfig
from tests.models import tiny_config


def test_offload_of_a_dense_model_is_refused_before_anything_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    experiment = tmp_path / "dense-run"
    save_config(RunConfig(model=tiny_config("dense")), experiment / "config.yaml")
    ckpt.save_checkpoint(model_file.step_checkpoint_path(experiment, 1), {"step": 1})

    def decode(*args, **kwargs):
        raise AssertionError("the set was loaded and decoded")

    monkeypatch.setattr(routing, "measure_routing", decode)
    assert main(["offload", str(experiment), "--device", "cpu"]) == 2
    assert "no mixture-of-experts model" in capsys.readouterr().err
    # A mixture of experts goes on to decode.
    save_config(RunConfig(model=tiny_config("switch")), experiment / "config.yaml")
    with pytest.raises(AssertionError, match="decoded"):
        routing.offload(experiment, AnalysisConfig())
