"""The recipe learns: a small Omni-router model, trained with the demo's recipe (convolutional
positions, no dropout, peak LR 6e-3, cosine decay) for a fixed number of steps on the tiny
corpus, transcribes the utterances it was trained on.

A regression guard on learning itself (a CER bound, not a time): a change that slows the escape
from the all-blank output, breaks the CTC targets, the positions or the optimiser, fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnirouter.data.loader import build_eval_loader, eval_cuts
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate import model_file
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.recognize import recognize
from omnirouter.evaluate.wer import score_set
from omnirouter.model import build_model
from omnirouter.train.trainer import train
from tests.train.conftest import tiny_run_config

pytestmark = pytest.mark.slow

STEPS = 800
# Measured on a 2-core AMD EPYC: 33.0% (the demo's former recipe, with sinusoidal positions,
# dropout 0.1 and LR 3e-3: 42.8%); an all-blank model scores 100%, and this model without
# per-utterance feature normalisation or with a per-token CTC mean stayed above 95% in 300
# steps (docs/recipe-study.md). The margin allows for another CPU's rounding.
TRAIN_CER_BOUND = 45.0


def test_a_small_model_learns_the_utterances_it_is_trained_on(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    config = tiny_run_config(
        tiny_corpus,
        model={
            "model_dim": 64,
            "num_heads": 4,
            "ffn_dim": 256,
            "position": "convolution",
            "dropout": 0.0,
        },
        max_steps=STEPS,
        log_every=50,
        checkpoint_every=STEPS,
        optimizer={"peak_lr": 6e-3, "grad_clip_norm": 1.0},  # the demo's
        schedule={"warmup_steps": 50, "cosine_steps": STEPS - 50, "cosine_final_ratio": 0.1},
    )
    exp_dir = tmp_path / "exp"
    train(config, exp_dir)

    tokenizer = Tokenizer.load(exp_dir / "tokenizer")
    model = build_model(config.model, tokenizer.vocab_size)
    model.load_state_dict(
        model_file.load_checkpoint(model_file.step_checkpoints(exp_dir)[-1])["model"]
    )
    loader = build_eval_loader(config.data, eval_cuts(config.data, "train"), tokenizer)
    recognitions = recognize(model.eval(), loader, tokenizer, torch.device("cpu"), progress=False)
    score = score_set("train", recognitions, get_normalizer())
    assert score.cer * 100 <= TRAIN_CER_BOUND, f"train CER {score.cer:.1%} after {STEPS} steps"
