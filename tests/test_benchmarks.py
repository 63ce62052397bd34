"""The MoE layer benchmark: its peers compute what the layer computes, and the script runs."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from omnirouter.model.config import Activation
from omnirouter.model.moe import Experts, MoEFeedForward, Router

REPO = Path(__file__).parents[1]
SCRIPT = REPO / "benchmarks" / "moe_layer.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("moe_layer_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("peer", ["masked_loop", "one_hot_einsum"])
def test_peers_compute_the_same_output_as_the_layer(peer: str) -> None:
    torch.manual_seed(0)
    layer = MoEFeedForward(Router(8, 4), Experts(4, 8, 16, Activation.relu, 0.0), layer=0)
    x_ND = torch.randn(37, 8)
    expected = layer(x_ND.unsqueeze(0), torch.ones(1, 37, dtype=torch.bool)).out_BTD[0]
    actual = getattr(load_benchmark(), peer)(layer, x_ND)
    torch.testing.assert_close(actual, expected)


def test_the_script_prints_a_row_per_expert_count() -> None:
    command = [sys.executable, str(SCRIPT), "--frames", "64", "--model-dim", "8", "--ffn-dim"]
    command += ["16", "--experts", "2", "4", "--repeats", "3", "--breakdown", "--threads", "1"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in output.splitlines() if line.split()[:1] in (["2"], ["4"])]
    assert [row[0] for row in rows] == ["2", "4"]
    for row in rows:
        ratios = [
            float(cell[:-1]) for cell in row if cell.endswith("x") and cell[:-1][:1].isdigit()
        ]
        # omnirouter, grouped_mm, masked loop, einsum, experts only, one expert
        assert len(ratios) == 6
        assert all(ratio > 0 for ratio in ratios)


TRAIN_STEP_SCRIPT = Path(__file__).parents[1] / "benchmarks" / "train_step.py"


def test_the_train_step_benchmark_prints_each_family_against_dense(tmp_path: Path) -> None:
    command = [sys.executable, str(TRAIN_STEP_SCRIPT), "--sizes", "demo", "--repeats", "2"]
    command += ["--batch-seconds", "8", "--corpus", str(tmp_path / "no-corpus")]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split() for line in output.splitlines() if line.split()}
    assert rows["dense"][-1] == "1.000"
    dense_parameters = float(rows["dense"][1].rstrip("M"))
    for family in ("switch", "omni"):
        assert float(rows[family][-1]) > 0 and float(rows[family][-2]) > 0  # ratio, audio-s/s
        # 4 experts: the MoE models hold about 2.8x the dense one's parameters at this size.
        assert 2.5 < float(rows[family][1].rstrip("M")) / dense_parameters < 3.1
    assert "loader" in output  # a missing corpus is said, not a crash


@pytest.mark.corpus
def test_the_conditions_benchmark_prints_a_rate_for_every_condition(tmp_path: Path) -> None:
    import yaml

    from omnirouter.config import load_config
    from omnirouter.data.synth.build import build_corpus
    from omnirouter.data.synth.config import SynthConfig

    values = yaml.safe_load((REPO / "configs" / "data" / "builtin-tiny.yaml").read_text())
    values["voice_pools"]["training"] = ["espeak:en-us", "espeak:en-gb"]
    values["sets"] = [s for s in values["sets"] if s["name"] == "train"]
    values["scale"] = 0.5
    config_path = tmp_path / "corpus.yaml"
    config_path.write_text(yaml.safe_dump(values))
    build_corpus(load_config(SynthConfig, [config_path]), tmp_path / "corpus", jobs=2)
    command = [sys.executable, str(REPO / "benchmarks" / "conditions.py")]
    command += ["--corpus", str(tmp_path / "corpus"), "--config", str(config_path)]
    output = subprocess.run(
        [*command, "--utterances", "3"], capture_output=True, text=True, check=True
    ).stdout
    rates = {
        line.rsplit(maxsplit=1)[0]: float(line.split()[-1])
        for line in output.splitlines()[2:]
        if line.strip()
    }
    assert {"babble (5 talkers, 10 dB)", "channel, gsm", "speed perturbation (sox)"} <= set(rates)
    assert len(rates) == 10 and all(rate > 0 for rate in rates.values())
