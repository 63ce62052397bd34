"""The experiment configuration: the shipped tiny config loads; bad input fails naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.config import ConfigError
from omnirouter.experiment.config import load_experiment_config, plan_runs
from omnirouter.experiment.pipeline import STAGES, forced_stages
from omnirouter.model.config import Family

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "experiments" / "tiny.yaml"
MODELS = "models=[{name: dense, overrides: [model.family=dense]}, {name: omni}]"


def test_tiny_config_plans_every_model_and_seed() -> None:
    config = load_experiment_config(TINY, ["exp_root=/runs"])
    runs = plan_runs(config)
    assert [run.label for run in runs] == [
        "dense/seed0",
        "dense/seed1",
        "switch/seed0",
        "omni/seed0",
    ]
    assert [run.exp_dir for run in runs][:2] == [
        Path("/runs/dense/seed0"),
        Path("/runs/dense/seed1"),
    ]
    assert [run.config.train.seed for run in runs] == [0, 1, 0, 0]
    assert [run.config.model.family for run in runs] == [
        Family.dense,
        Family.dense,
        Family.switch,
        Family.omni,
    ]
    # The shared run config is the base of every model; the corpus is the experiment's.
    assert {run.config.model.model_dim for run in runs} == {config.run.model.model_dim}
    assert {run.config.data.corpus_dir for run in runs} == {config.corpus.corpus_dir}
    assert config.baseline_name == "dense"


def test_defaults_name_the_directories_after_the_experiment() -> None:
    config = load_experiment_config(None, [MODELS, "name=trial"])
    assert config.exp_root_dir == Path("exp/trial")
    assert config.report_path == Path("reports/trial")
    assert config.baseline_name == "dense"  # the first model
    assert config.seeds_of(config.models[1]) == [0]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["models=[{name: a}, {name: a}]"], "a given more than once"),
        ([MODELS, "baseline=switch"], "baseline: 'switch' is not one of the models"),
        ([MODELS, "analysis.models=[switch]"], r"analysis.models: \['switch'\]"),
        ([MODELS, "seeds=[1,1]"], "seeds: 1 given more than once"),
        (["models=[]"], "names no model"),
        (["models=[{name: 'a/b'}]"], "names a directory"),
        (["models=[{name: x, overrides: [model.num_expert=2]}]"], r"models\[x\].*num_expert"),
        (["models=[{name: x, overrides: [model.family=mixture]}]"], r"models\[x\].*family"),
        (["models=[{name: x, overrides: [model.model_dim=30]}]"], r"models\[x\].*num_heads"),
        (["models=[{name: x, overrides: [model.family]}]"], r"models\[x\].*key\.sub=value"),
        ([MODELS, "run.train.max_step=3"], "max_step"),
        ([MODELS, "proposals.mode=bogus"], r"proposals\.mode.*gumbel, ranked"),
        ([MODELS, "proposals.counts=[0,2]"], r"proposals\.counts must be integers >= 1"),
        ([MODELS, "proposals.temperature=-1"], r"proposals\.temperature must be >= 0"),
    ],
)
def test_bad_input_is_named(overrides: list[str], named: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=named):
        load_experiment_config(None, overrides)


def test_forced_stage_includes_every_later_stage() -> None:
    assert forced_stages(None) == frozenset()
    assert forced_stages("eval") == {"eval", "lm", "analysis", "proposals", "compare", "report"}
    assert forced_stages("corpus") == set(STAGES)
    with pytest.raises(ValueError, match="unknown stage"):
        forced_stages("deploy")


def test_command_line_reports_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: dense\n  - name: dense\n")
    assert main(["experiment", str(path)]) == 2
    error = capsys.readouterr().err
    assert "omnirouter experiment: error:" in error
    assert "dense given more than once" in error


def test_model_files_are_merged_before_the_overrides(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  corpus_dir: elsewhere\ntrain:\n  max_steps: 500\n")
    model = tmp_path / "model.yaml"
    model.write_text("model:\n  family: switch\n  num_experts: 8\n")
    config = load_experiment_config(
        None,
        [
            f"models=[{{name: big, files: [{recipe}, {model}], overrides: [model.num_experts=2]}}]",
            "corpus.corpus_dir=data/mine",
        ],
    )
    (run,) = plan_runs(config)
    assert run.config.model.family is Family.switch
    assert run.config.model.num_experts == 2  # the override wins over the file
    assert run.config.train.max_steps == 500
    assert run.config.data.corpus_dir == "data/mine"  # always the experiment's corpus
    missing = f"models=[{{name: big, files: [{tmp_path / 'absent.yaml'}]}}]"
    with pytest.raises(ConfigError, match=r"models\[big\].*absent.yaml not found"):
        load_experiment_config(None, [missing])
