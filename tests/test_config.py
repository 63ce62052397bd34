"""Configuration: YAML and dotted overrides through OmegaConf, errors that name the key."""

from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.config import ConfigError, config_to_dict, load_config, save_config
from omnirouter.experiment.config import load_experiment_config
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


def test_malformed_yaml_is_one_line_naming_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  family: omni\n  num_layers: [1, 2\ntrain:\n  max_steps: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(RunConfig, [path])
    message = str(error.value)
    # PyYAML's mark for an unclosed flow sequence: where the next line's key starts.
    assert message.startswith(f"{path}, line 4, column 6: YAML syntax error:"), message
    assert "\n" not in message


def test_the_cli_prints_a_malformed_yaml_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  family: omni\n   num_layers: 3\n")
    assert main(["train", str(path), "--exp-dir", str(tmp_path / "exp")]) == 2
    error = capsys.readouterr().err
    assert f"error: {path}, line 3, column 14: YAML syntax error:" in error
    assert "Traceback" not in error and not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.optimizer.peak_lr=-0.003", "train.optimizer.peak_lr must be > 0, got -0.003"),
        ("train.optimizer.beta2=1.0", "train.optimizer.beta2 must be in [0, 1), got 1.0"),
        ("train.optimizer.eps=0", "train.optimizer.eps must be > 0, got 0.0"),
        ("train.optimizer.grad_clip_norm=-1", "train.optimizer.grad_clip_norm must be >= 0"),
        ("train.schedule.cosine_final_ratio=2", "train.schedule.cosine_final_ratio must be in"),
        ("train.schedule.step_decay_factor=0", "train.schedule.step_decay_factor must be in"),
        ("train.loss.load_balance_weight=-10", "train.loss.load_balance_weight must be >= 0"),
        ("train.loss.z_loss_weight=-1e-3", "train.loss.z_loss_weight must be >= 0"),
        ("train.keep_last=-1", "train.keep_last must be >= 0, got -1"),
        ("train.max_consecutive_nonfinite=0", "train.max_consecutive_nonfinite must be >= 1"),
        ("data.quadratic_duration=0", "data.quadratic_duration must be > 0"),
        ("data.num_cuts_for_bins_estimate=0", "data.num_cuts_for_bins_estimate must be >= 1"),
        ("data.features.frame_shift_ms=0", "data.features.frame_shift_ms must be > 0"),
        ("data.features.dither=-0.1", "data.features.dither must be >= 0, got -0.1"),
        ("data.spec_augment.max_time_ratio=1.5", "data.spec_augment.max_time_ratio must be in"),
        ("model.num_heads=0", "model.num_heads must be >= 1, got 0"),
        ("model.router_jitter=-0.1", "model.router_jitter must be in [0, 1)"),
    ],
)
def test_values_out_of_range_are_refused_at_load_naming_the_key(
    override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(RunConfig, [], [override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("corpus.jobs=-1", "corpus.jobs must be >= 0"),
        ("analysis.max_utterances=-2", "analysis.max_utterances must be >= 0, got -2"),
        ("analysis.permutation_probabilities=[0.0,1.5]", "analysis.permutation_probabilities"),
        ("analysis.summary.silence_threshold=2", "analysis.summary.silence_threshold must be"),
        ("train_jobs=0", "train_jobs must be >= 1, got 0"),
        ("run.train.optimizer.peak_lr=-0.003", "train.optimizer.peak_lr must be > 0"),
    ],
)
def test_experiment_values_out_of_range_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment_config(None, ["models=[{name: dense}]", override])
    assert message in str(error.value)


def test_a_negative_learning_rate_is_refused_before_the_experiment_directory_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  max_steps: 1\n")
    exp_dir = tmp_path / "exp"
    command = ["train", str(path), "train.optimizer.peak_lr=-0.003", "--exp-dir", str(exp_dir)]
    assert main(command) == 2
    assert "train.optimizer.peak_lr must be > 0, got -0.003" in capsys.readouterr().err
    assert not exp_dir.exists()
