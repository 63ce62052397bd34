"""A tiny synthetic corpus (espeak-ng voices only, about 3 minutes) shared by the training tests."""

from pathlib import Path

import pytest

from omnirouter.config import config_from_dict
from omnirouter.data.prepare import train_corpus_tokenizer
from omnirouter.data.tokenizer import TokenizerConfig
from omnirouter.train.config import RunConfig
from tests.corpora import espeak_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus_dir = espeak_corpus(
        tmp_path_factory.mktemp("corpus"), 2.5, 0.4, ["en-us", "en-gb", "en-us+m3"]
    )
    # Multi-process runs need the tokenizer beforehand (single-process runs would train it).
    train_corpus_tokenizer(corpus_dir, TokenizerConfig(vocab_size=64))
    return corpus_dir


def tiny_run_config(corpus_dir: Path, model: dict | None = None, **train_overrides) -> RunConfig:
    """A 40k-parameter omni model on the tiny corpus, deterministic on CPU."""
    return config_from_dict(
        RunConfig,
        {
            "model": {
                "family": "omni",
                "model_dim": 32,
                "num_heads": 2,
                "num_layers": 2,
                "ffn_dim": 64,
                "num_experts": 2,
                "dropout": 0.1,
                "attention_dropout": 0.0,
                **(model or {}),
            },
            "data": {
                "corpus_dir": str(corpus_dir),
                "max_duration": 30.0,
                "num_workers": 0,
                "num_buckets": 2,
                "tokenizer": {"vocab_size": 64},
            },
            "train": {
                "device": "cpu",
                "log_every": 1,
                "valid_every": 0,
                "checkpoint_every": 1000,
                "progress": False,
                "optimizer": {"peak_lr": 3e-3, "grad_clip_norm": 1.0},
                "schedule": {"warmup_steps": 5, "cosine_steps": 50, "step_decay_every": 20},
                **train_overrides,
            },
        },
    )
