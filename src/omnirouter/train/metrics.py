"""Where a run's numbers go: metrics.jsonl (one JSON object per record), TensorBoard, train.log.

Record kinds in metrics.jsonl:
  {"kind": "train", "step", "epoch", "ctc_loss", "ctc_loss_per_token", "load_balance_loss",
   "z_loss", "total_loss",
   "lr", "grad_norm", "audio_seconds_per_second", "expert_load": [[fraction per expert] per
   MoE layer], "skipped_nonfinite", "skipped_utterances"}
  {"kind": "valid", "step", "dev_wer", "dev_cer", "best_dev_wer", "dev_ctc_loss_per_token"
   (the dev subset's, comparable with the training records' "ctc_loss_per_token")}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


class MetricsWriter:
    """Appends records to metrics.jsonl and mirrors the scalars to TensorBoard (main rank only)."""

    def __init__(self, exp_dir: Path, resume_step: int = 0) -> None:
        self.path = exp_dir / METRICS_FILE
        if resume_step > 0:
            _truncate_after(self.path, resume_step)
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(
            log_dir=str(exp_dir / "tensorboard"), purge_step=resume_step or None
        )

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        step, kind = record["step"], record["kind"]
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "step":
                self.tensorboard.add_scalar(f"{kind}/{key}", value, step)
        for layer, loads in enumerate(record.get("expert_load", [])):
            for expert, fraction in enumerate(loads):
                self.tensorboard.add_scalar(
                    f"expert_load/layer{layer:02d}/expert{expert}", fraction, step
                )

    def close(self) -> None:
        self.tensorboard.close()


def read_metrics(exp_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    path = Path(exp_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if kind is None or record.get("kind") == kind]


def _truncate_after(path: Path, step: int) -> None:
    """A resumed run repeats the steps after its checkpoint: drop their old records."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def attach_log_file(exp_dir: Path) -> logging.Handler:
    """Everything the package logs also goes to EXP/train.log."""
    handler = logging.FileHandler(exp_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("omnirouter").addHandler(handler)
    logging.getLogger("omnirouter").setLevel(logging.INFO)
    return handler
