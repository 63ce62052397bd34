"""Training under bf16 autocast on the CPU (the precision of the CUDA path, `train.precision=bf16`):
the body runs in bf16 while CTC and the router stay in fp32, the loss falls, and a checkpoint
written under bf16 resumes to the same weights as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnirouter.evaluate import model_file
from omnirouter.train import step as step_module
from omnirouter.train.metrics import read_metrics
from omnirouter.train.trainer import train
from tests.train.conftest import tiny_run_config

pytestmark = pytest.mark.slow

SCHEDULE = {"warmup_steps": 5, "cosine_steps": 35, "cosine_final_ratio": 0.1}


def test_bf16_training_keeps_ctc_and_router_in_fp32_and_learns(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, set] = {"log_probs": set(), "router": set(), "body": set(), "ctc": set()}
    real_total_loss = step_module.total_loss

    def checking_total_loss(output, *args, **kwargs):
        seen["log_probs"].add(output.log_probs_BTV.dtype)
        seen["router"].update(routing.logits_NE.dtype for routing in output.routing)
        terms = real_total_loss(output, *args, **kwargs)
        seen["ctc"].add(terms.ctc.dtype)
        return terms

    monkeypatch.setattr(step_module, "total_loss", checking_total_loss)
    original_forward = torch.nn.Linear.forward

    def recording_forward(self, x):
        out = original_forward(self, x)
        seen["body"].add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording_forward)
    config = tiny_run_config(
        tiny_corpus, max_steps=40, precision="bf16", checkpoint_every=40, schedule=SCHEDULE
    )
    train(config, tmp_path / "exp")

    assert torch.bfloat16 in seen["body"]  # the Transformer ran under autocast
    assert seen["log_probs"] == {torch.float32}
    assert seen["router"] == {torch.float32}
    assert seen["ctc"] == {torch.float32}
    records = read_metrics(tmp_path / "exp").train
    losses = [record.ctc_loss for record in records]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < 0.85 * sum(losses[:5]), losses


def test_a_checkpoint_written_under_bf16_resumes_to_the_same_weights(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    def config(steps: int):
        return tiny_run_config(
            tiny_corpus, max_steps=steps, precision="bf16", checkpoint_every=10, schedule=SCHEDULE
        )

    train(config(20), tmp_path / "straight")
    train(config(10), tmp_path / "resumed")
    train(config(20), tmp_path / "resumed", resume=True)
    expected = model_file.load_checkpoint(model_file.step_checkpoints(tmp_path / "straight")[-1])[
        "model"
    ]
    actual = model_file.load_checkpoint(model_file.step_checkpoints(tmp_path / "resumed")[-1])[
        "model"
    ]
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)
