"""Training CTC-loss curves of the compared runs (paper Fig. 6), read from `metrics.jsonl`.

Each line of an experiment's `metrics.jsonl` is one JSON object; training records have
`"kind": "train"`, a `"step"` and a `"ctc_loss"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class LossCurve:
    name: str  # model name
    steps: tuple[int, ...]
    ctc_loss: tuple[float, ...]


def read_loss_curve(name: str, metrics_path: str | Path) -> LossCurve:
    """The training CTC loss of one run, in step order."""
    metrics_path = Path(metrics_path)
    points: dict[int, float] = {}
    for line_number, line in enumerate(metrics_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{metrics_path}:{line_number}: not JSON ({error.msg})") from None
        if record.get("kind") == "train" and "ctc_loss" in record:
            # A resumed run may log a step twice; the later record wins.
            points[int(record["step"])] = float(record["ctc_loss"])
    steps = sorted(points)
    return LossCurve(name, tuple(steps), tuple(points[step] for step in steps))


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with the start-up bias removed (as TensorBoard draws it)."""
    smoothed = np.empty(len(values))
    average, normaliser = 0.0, 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        normaliser = weight * normaliser + (1 - weight)
        smoothed[index] = average / normaliser
    return smoothed
