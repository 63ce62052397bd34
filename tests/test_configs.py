"""Every shipped YAML file loads against its schema (a typo in a config is caught here)."""

from pathlib import Path

import pytest
import torch

from omnirouter.config import load_config
from omnirouter.model import build_model, count_parameters
from omnirouter.train.config import RunConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER = CONFIGS / "experiments" / "paper"
PAPER_MODELS = sorted(
    p for p in PAPER.glob("*.yaml") if p.stem not in ("librispeech", "libriheavy")
)


@pytest.mark.parametrize("recipe", ["librispeech", "libriheavy"])
@pytest.mark.parametrize("model_file", PAPER_MODELS, ids=lambda p: p.stem)
def test_paper_configs_load(recipe: str, model_file: Path) -> None:
    config = load_config(RunConfig, [PAPER / f"{recipe}.yaml", model_file])
    assert config.train.optimizer.peak_lr == 1e-3
    assert config.train.schedule.warmup_steps == 64_000
    assert config.train.optimizer.grad_clip_norm == 0.1
    assert config.train.loss.load_balance_weight == 10.0
    assert config.model.num_layers == 16 and config.model.ffn_dim == 4096


def test_paper_model_sizes_match_tables_two_and_three() -> None:
    expected = {
        "switch-2e": 156,
        "omni-4e": 290,
        "omni-8e": 559,
        "switch-2e-246m": 246,
        "omni-2e-345m": 345,
    }
    for stem, millions in expected.items():
        config = load_config(RunConfig, [PAPER / "librispeech.yaml", PAPER / f"{stem}.yaml"])
        with torch.device("meta"):
            model = build_model(config.model, config.data.tokenizer.vocab_size)
        assert abs(count_parameters(model) / 1e6 - millions) / millions < 0.01, stem


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "experiments").glob("*.yaml")), ids=lambda p: p.stem
)
def test_experiment_configs_load(path: Path) -> None:
    from omnirouter.experiment.config import load_experiment_config, plan_runs

    config = load_experiment_config(path, [])
    names = [model.name for model in config.models]
    assert config.baseline in names
    assert {run.config.model.family.value for run in plan_runs(config)} == {
        "dense",
        "switch",
        "omni",
    }


@pytest.mark.parametrize("path", sorted((CONFIGS / "study").glob("*.yaml")), ids=lambda p: p.stem)
def test_study_configs_load(path: Path) -> None:
    config = load_config(RunConfig, [path])
    assert config.data.features.use_stored and config.train.max_steps > 0
