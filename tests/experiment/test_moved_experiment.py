"""A finished experiment copied elsewhere (corpus, runs and report together) finds every stage
done there: nothing it records depends on where it lies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from omnirouter.experiment.config import ExperimentConfig, load_experiment_config
from omnirouter.experiment.pipeline import run_experiment
from tests.analysis.test_experiments import tone_corpus

# Two tiny models of tests/analysis/test_experiments.py, 3 steps each, on the tone corpus.
EXPERIMENT = """
name: moved
corpus: {synth_config: ""}
run:
  model: {model_dim: 32, num_heads: 2, num_layers: 3, ffn_dim: 64, num_experts: 2,
          dropout: 0.0, attention_dropout: 0.0}
  data: {max_duration: 30.0, num_workers: 0, num_buckets: 2, tokenizer: {vocab_size: 30}}
  train: {device: cpu, max_steps: 3, log_every: 1, valid_every: 0, progress: false,
          schedule: {warmup_steps: 2, cosine_steps: 5, step_decay_every: 5}}
models:
  - {name: dense, overrides: [model.family=dense]}
  - {name: omni, overrides: [model.family=omni]}
eval_sets: [dev]
eval_device: cpu
cpu_threads: 1
train_jobs: 2  # in worker processes, each holding its run's lock under the root's
analysis: {set_name: dev, num_shown_utterances: 1, permutation_probabilities: [0.0, 0.5],
           device: cpu, normalizer: none}
proposals: {counts: [1, 2]}
"""

pytestmark = pytest.mark.slow  # about 40 s on 2 cores: two trainings, evaluations, a report


def experiment_in(root: Path) -> ExperimentConfig:
    (root / "experiment.yaml").write_text(EXPERIMENT)
    return load_experiment_config(
        root / "experiment.yaml",
        [
            f"corpus.corpus_dir={root / 'corpus'}",
            f"exp_root={root / 'exp'}",
            f"report_dir={root / 'report'}",
        ],
    )


def test_a_copied_experiment_finds_every_stage_done(tmp_path: Path) -> None:
    first = tmp_path / "first"
    (first / "corpus").mkdir(parents=True)
    tone_corpus(first / "corpus")
    run_experiment(experiment_in(first), command="omnirouter experiment experiment.yaml")

    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, copy)  # keeps the files' times, as cp -a, rsync -a and mv do
    shutil.rmtree(first)  # nothing may still be read from the old place
    outputs = run_experiment(experiment_in(copy), command="omnirouter experiment again")

    invocations = json.loads(outputs.stages.read_text())["invocations"]
    assert invocations[0]["ran"]  # the first run did the work ...
    assert invocations[1]["ran"] == []  # ... the copy redid none of it
    stages = {entry.split()[0] for entry in invocations[1]["skipped"]}
    assert {"corpus", "tokenizer", "train", "eval", "analysis", "proposals"} <= stages
    assert {"compare", "report"} <= stages
