"""Configuration: YAML and dotted overrides through OmegaConf, errors that name the key."""

from pathlib import Path

import pytest

from omnirouter.config import ConfigError, config_to_dict, load_config, save_config
from omnirouter.model.config import Family
from omnirouter.train.config import RunConfig


def test_yaml_then_overrides_then_round_trip(tmp_path: Path) -> None:
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("model:\n  family: switch\n  num_experts: 2\ntrain:\n  max_steps: 10\n")
    config = load_config(
        RunConfig, [yaml_path], ["model.num_experts=8", "train.optimizer.peak_lr=5e-4"]
    )
    assert config.model.family is Family.switch
    assert config.model.num_experts == 8
    assert config.train.max_steps == 10
    assert config.train.optimizer.peak_lr == 5e-4
    assert config.train.loss.load_balance_weight == 10.0  # the paper's default survives

    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    assert load_config(RunConfig, [saved]) == config
    assert config_to_dict(config)["model"]["family"] == "switch"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.num_expert=4", "num_expert"),
        ("train.max_steps=many", "train.max_steps"),
        ("model.family=mixture", "model.family"),
        ("data.nonexistent.key=1", "nonexistent"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(RunConfig, [], [override])


def test_semantic_checks_name_the_field() -> None:
    with pytest.raises(ConfigError, match="num_heads"):
        load_config(RunConfig, [], ["model.model_dim=30", "model.num_heads=4"])
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(RunConfig, [], ["model.num_experts"])
    with pytest.raises(ConfigError, match=r"model\.dropout=1\.0 must lie in \[0, 1\)"):
        load_config(RunConfig, [], ["model.dropout=1.0"])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(RunConfig, [tmp_path / "absent.yaml"])
