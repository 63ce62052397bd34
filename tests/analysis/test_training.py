"""Reading training-loss curves from metrics.jsonl, and their smoothing."""

import json
from pathlib import Path

import numpy as np

from omnirouter.analysis.training import read_loss_curve, smooth


def train_line(step: int, ctc_loss: float, **logged: float) -> dict:
    """A training record of metrics.jsonl (as a first-version trainer wrote it unless `logged`
    adds the later fields); the numbers the curve does not read are made up."""
    return {
        "kind": "train",
        "step": step,
        "epoch": 0,
        "ctc_loss": ctc_loss,
        **logged,
        "load_balance_loss": 1.0,
        "z_loss": 0.0,
        "total_loss": ctc_loss + 10.0,
        "lr": 0.1,
        "grad_norm": 1.0,
        "audio_seconds_per_second": 100.0,
        "expert_load": [[0.5, 0.5]],
        "skipped_nonfinite": 0,
        "skipped_utterances": 0,
    }


def valid_line(step: int, dev_wer: float, **logged: float) -> dict:
    """A validation record of metrics.jsonl (see `train_line`)."""
    return {"kind": "valid", "step": step, "dev_wer": dev_wer, "best_dev_wer": dev_wer, **logged}


def test_read_loss_curve_keeps_training_records_in_step_order(tmp_path: Path) -> None:
    lines = [
        train_line(20, 3.0),
        valid_line(20, 0.5),
        train_line(10, 4.0),
        train_line(20, 2.5),  # logged again: later wins
        {"kind": "future", "step": 20},  # a record of a kind this version does not know
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    curve = read_loss_curve("run", tmp_path)
    assert curve is not None
    assert curve.steps == (10, 20)
    assert curve.ctc_loss == (4.0, 2.5)
    assert curve.valid_steps == (20,) and curve.dev_wer == (0.5,)
    assert np.isnan(curve.dev_loss_per_token).all()  # not logged by this run
    assert np.isnan(curve.loss_per_token).all()


def test_read_loss_curve_keeps_the_validations(tmp_path: Path) -> None:
    lines = [
        train_line(10, 4.0, ctc_loss_per_token=0.2),
        valid_line(10, 90.0, dev_cer=50.0, dev_ctc_loss_per_token=0.25),
        valid_line(5, 95.0, dev_ctc_loss=40.0),  # a key of an older version, ignored
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    curve = read_loss_curve("run", tmp_path)
    assert curve is not None
    assert curve.valid_steps == (5, 10)
    assert curve.dev_wer == (95.0, 90.0)
    assert np.isnan(curve.dev_loss_per_token[0]) and curve.dev_loss_per_token[1] == 0.25
    assert curve.loss_per_token == (0.2,)


def test_a_run_without_metrics_has_no_curve(tmp_path: Path) -> None:
    assert read_loss_curve("run", tmp_path) is None


def test_smooth_is_a_debiased_exponential_average() -> None:
    values = np.array([4.0, 2.0, 6.0])
    weight = 0.5
    # By hand: s_t = Σ_i w^(t-i) (1-w) v_i / Σ_i w^(t-i) (1-w)
    expected = [4.0, (0.5 * 4 + 2) / 1.5, (0.25 * 4 + 0.5 * 2 + 6) / 1.75]
    np.testing.assert_allclose(smooth(values, weight), expected)
    np.testing.assert_allclose(smooth(np.full(10, 3.0), 0.9), 3.0)
    np.testing.assert_allclose(smooth(values, 0.0), values)
