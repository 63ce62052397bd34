"""Training CTC-loss curves of the compared runs (paper Fig. 6) and their validations, from each
run's metrics.jsonl (see `omnirouter.train.metrics`: its `TrainRecord`s and `ValidRecord`s)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnirouter.train.metrics import METRICS_FILE, RunMetrics, read_metrics


@dataclass(frozen=True)
class LossCurve:
    name: str  # model name
    steps: tuple[int, ...]
    ctc_loss: tuple[float, ...]
    # NaN where a run of an older version did not log it:
    loss_per_token: tuple[float, ...] = ()  # training CTC loss per target token, at `steps`
    valid_steps: tuple[int, ...] = ()
    dev_wer: tuple[float, ...] = ()  # percent
    dev_loss_per_token: tuple[float, ...] = ()


def read_loss_curve(name: str, experiment_dir: str | Path) -> LossCurve | None:
    """The training CTC loss of a run, in step order, and its validations; None when it left
    no metrics."""
    if not (Path(experiment_dir) / METRICS_FILE).is_file():
        return None
    return loss_curve_of(name, read_metrics(experiment_dir))


def loss_curve_of(name: str, metrics: RunMetrics) -> LossCurve:
    """The curve in a run's metrics records."""
    # Keyed by step: should a step be logged twice, the later record wins.
    train = {record.step: record for record in metrics.train}
    valid = {record.step: record for record in metrics.valid}
    steps, valid_steps = sorted(train), sorted(valid)
    return LossCurve(
        name,
        tuple(steps),
        tuple(float(train[step].ctc_loss) for step in steps),
        tuple(float(train[step].ctc_loss_per_token) for step in steps),
        tuple(valid_steps),
        tuple(float(valid[step].dev_wer) for step in valid_steps),
        tuple(_nan_if_none(valid[step].dev_ctc_loss_per_token) for step in valid_steps),
    )


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with the start-up bias removed (as TensorBoard draws it)."""
    smoothed = np.empty(len(values))
    average, normaliser = 0.0, 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        normaliser = weight * normaliser + (1 - weight)
        smoothed[index] = average / normaliser
    return smoothed
