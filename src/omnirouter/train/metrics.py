"""Where a run's numbers go: metrics.jsonl (one JSON object per record), TensorBoard, train.log.

Each line of metrics.jsonl is a `TrainRecord` or a `ValidRecord` (their `to_dict`): an object
whose "kind" is "train" or "valid", then the record's fields in their order.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from omnirouter.errors import OmnirouterError

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


class MetricsFileError(OmnirouterError, ValueError):
    """A line of metrics.jsonl that is not a record of a known form."""


@dataclass(frozen=True, kw_only=True)
class TrainRecord:
    """The training numbers of the steps since the previous record, averaged over every
    device's micro-batches."""

    kind: ClassVar[str] = "train"
    step: int
    epoch: int
    ctc_loss: float  # mean per micro-batch (see losses.CtcReduction)
    # Σ utterance CTC NLL ÷ Σ target tokens: comparable with ValidRecord.dev_ctc_loss_per_token
    # whatever the utterances' lengths. NaN when read from a run older than this field.
    ctc_loss_per_token: float = math.nan
    load_balance_loss: float  # mean per micro-batch, Σ over MoE layers, unweighted
    z_loss: float  # mean per micro-batch, Σ over MoE layers, unweighted
    total_loss: float  # mean per micro-batch, what was back-propagated
    lr: float
    grad_norm: float  # of the record's last step, before clipping
    audio_seconds_per_second: float
    expert_load: list[list[float]]  # per MoE layer, the fraction of frames per expert
    skipped_nonfinite: int  # steps skipped for a non-finite loss or gradient, since step 0
    skipped_utterances: int  # utterances the loader left out, since step 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainRecord:
        return cls(**_known_fields(cls, values))


@dataclass(frozen=True, kw_only=True)
class ValidRecord:
    """A validation on the dev set (or its first `train.valid_max_utterances` utterances)."""

    kind: ClassVar[str] = "valid"
    step: int
    dev_wer: float  # percent
    dev_cer: float = math.nan  # percent; NaN when read from a run older than this field
    best_dev_wer: float  # percent, the best so far
    # Counted as TrainRecord.ctc_loss_per_token is; None when no dev utterance fits its frames
    # (left out of the file then).
    dev_ctc_loss_per_token: float | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {"kind": self.kind, **asdict(self)}
        if self.dev_ctc_loss_per_token is None:
            del values["dev_ctc_loss_per_token"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ValidRecord:
        return cls(**_known_fields(cls, values))


MetricsRecord = TrainRecord | ValidRecord


@dataclass(frozen=True)
class RunMetrics:
    """A run's records, each kind in file order."""

    train: list[TrainRecord]
    valid: list[ValidRecord]


class MetricsWriter:
    """Appends records to metrics.jsonl and mirrors the scalars to TensorBoard (main rank only)."""

    def __init__(self, exp_dir: Path, resume_step: int = 0) -> None:
        self.path = exp_dir / METRICS_FILE
        if resume_step > 0:
            _truncate_after(self.path, resume_step)
        # Imported here: TensorBoard takes a second to import, and only training writes.
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(
            log_dir=str(exp_dir / "tensorboard"), purge_step=resume_step or None
        )

    def write(self, record: MetricsRecord) -> None:
        values = record.to_dict()
        with self.path.open("a") as stream:
            stream.write(json.dumps(values) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and key != "step":
                self.tensorboard.add_scalar(f"{record.kind}/{key}", value, record.step)
        for layer, loads in enumerate(values.get("expert_load", [])):
            for expert, fraction in enumerate(loads):
                self.tensorboard.add_scalar(
                    f"expert_load/layer{layer:02d}/expert{expert}", fraction, record.step
                )

    def close(self) -> None:
        self.tensorboard.close()


def read_metrics(exp_dir: str | Path) -> RunMetrics:
    """The records of EXP/metrics.jsonl (none when there is no such file); lines of another
    kind are skipped."""
    path = Path(exp_dir) / METRICS_FILE
    train: list[TrainRecord] = []
    valid: list[ValidRecord] = []
    if not path.is_file():
        return RunMetrics(train, valid)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
            kind = values.get("kind")
            if kind == TrainRecord.kind:
                train.append(TrainRecord.from_dict(values))
            elif kind == ValidRecord.kind:
                valid.append(ValidRecord.from_dict(values))
        except (json.JSONDecodeError, AttributeError, TypeError) as error:
            raise MetricsFileError(
                f"{path}, line {number}: not a metrics record ({error})"
            ) from None
    return RunMetrics(train, valid)


def _known_fields(cls: type[MetricsRecord], values: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` in `values`, without "kind" and the keys of older versions (such as
    a validation's "dev_ctc_loss"); a missing field without a default is a TypeError."""
    names = {member.name for member in fields(cls)}
    return {key: value for key, value in values.items() if key in names}


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
