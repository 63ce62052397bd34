"""`omnirouter analyze` on real experiment directories: a tiny corpus imported through the data
package, two tiny models trained for a few steps by the real trainer, then the analysis."""

from pathlib import Path

import numpy as np
import soundfile

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.results import load_results
from omnirouter.config import config_from_dict
from omnirouter.data.imports import import_table
from omnirouter.data.manifests import write_corpus
from omnirouter.experiment.routing import analyze
from omnirouter.train.config import RunConfig
from omnirouter.train.trainer import train

SENTENCES = {
    "train": ["the cat sat on the mat", "a dog ran in the park", "she sells sea shells"],
    "dev": ["the quick brown fox", "rain fell on the old town"],
}


def tone_speech(text: str, path: Path) -> Path:
    """One tone burst per word with silence between: speech-like energy contours."""
    rate = 16000
    pieces = [np.zeros(int(0.2 * rate))]
    for index, word in enumerate(text.split()):
        time = np.arange(int(0.07 * len(word) * rate)) / rate
        pieces += [0.3 * np.sin(2 * np.pi * (180 + 40 * index) * time), np.zeros(int(0.1 * rate))]
    soundfile.write(path, np.concatenate(pieces), rate)
    return path


def tiny_experiment(corpus_dir: Path, family: str, experiment_dir: Path) -> Path:
    config = config_from_dict(
        RunConfig,
        {
            "model": {
                "family": family,
                "model_dim": 32,
                "num_heads": 2,
                "num_layers": 3,
                "ffn_dim": 64,
                "num_experts": 2,
                "dropout": 0.0,
                "attention_dropout": 0.0,
            },
            "data": {
                "corpus_dir": str(corpus_dir),
                "max_duration": 30.0,
                "num_workers": 0,
                "num_buckets": 2,
                "tokenizer": {"vocab_size": 30},
            },
            "train": {
                "device": "cpu",
                "max_steps": 3,
                "log_every": 1,
                "valid_every": 0,
                "progress": False,
                "schedule": {"warmup_steps": 2, "cosine_steps": 5, "step_decay_every": 5},
            },
        },
    )
    train(config, experiment_dir)
    return experiment_dir


def tone_corpus(directory: Path) -> Path:
    """A corpus of SENTENCES as tone bursts, imported through the data package."""
    prepared = []
    for set_name, texts in SENTENCES.items():
        rows = [
            f"{tone_speech(text, directory / f'{set_name}{index}.wav').name}\t{text}\t{set_name}-{index}"
            for index, text in enumerate(texts)
        ]
        (directory / f"{set_name}.tsv").write_text("".join(row + "\n" for row in rows))
        prepared.append(import_table(directory / f"{set_name}.tsv", set_name).prepared)
    write_corpus(directory, "tones", prepared)
    return directory


def test_analyze_trained_experiments_end_to_end(tmp_path: Path) -> None:
    tone_corpus(tmp_path)
    omni = tiny_experiment(tmp_path, "omni", tmp_path / "omni-run")
    switch = tiny_experiment(tmp_path, "switch", tmp_path / "switch-run")

    config = AnalysisConfig(
        num_shown_utterances=1, permutation_probabilities=[0.0, 0.5], normalizer="none"
    )
    outputs = analyze(omni, config, compare=[switch])

    assert outputs.directory == omni / "analysis" / "dev"
    assert len(outputs.figures.all()) == 7
    results = load_results(outputs.directory)
    assert [model.name for model in results.models] == ["omni-run", "switch-run"]
    for model in results.models:
        assert model.records is not None
        assert model.records.cut_ids == ("dev-0", "dev-1")
        assert model.records.num_layers == 3
        assert model.loss_curve is not None and model.loss_curve.steps == (1, 2, 3)
    omni_records, switch_records = (model.records for model in results.models)
    assert len(set(omni_records.router_ids)) == 1 and len(set(switch_records.router_ids)) == 3
    for records in (omni_records, switch_records):  # the prefetcher's lookahead is recorded
        assert (records.lookahead()[:-1] >= 0).all() and (records.lookahead()[-1] == -1).all()
