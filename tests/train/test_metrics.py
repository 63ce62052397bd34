"""metrics.jsonl: typed records written in the file's fixed form, and read back by kind."""

import json
import math
from pathlib import Path

import pytest

from omnirouter.train.metrics import (
    MetricsFileError,
    MetricsWriter,
    RunMetrics,
    TrainRecord,
    ValidRecord,
    read_metrics,
)

TRAIN = TrainRecord(
    step=2,
    epoch=0,
    ctc_loss=3.5,
    ctc_loss_per_token=0.25,
    load_balance_loss=1.0,
    z_loss=0.0,
    total_loss=13.5,
    lr=0.001,
    grad_norm=2.0,
    audio_seconds_per_second=100.0,
    expert_load=[[0.75, 0.25]],
    skipped_nonfinite=1,
    skipped_utterances=0,
)


def test_records_keep_the_file_format() -> None:
    # The lines as the trainer has always written them (keys in this order).
    assert json.dumps(TRAIN.to_dict()) == (
        '{"kind": "train", "step": 2, "epoch": 0, "ctc_loss": 3.5, "ctc_loss_per_token": 0.25, '
        '"load_balance_loss": 1.0, "z_loss": 0.0, "total_loss": 13.5, "lr": 0.001, '
        '"grad_norm": 2.0, "audio_seconds_per_second": 100.0, "expert_load": [[0.75, 0.25]], '
        '"skipped_nonfinite": 1, "skipped_utterances": 0}'
    )
    valid = ValidRecord(step=2, dev_wer=50.0, dev_cer=20.0, best_dev_wer=40.0)
    assert json.dumps(valid.to_dict()) == (
        '{"kind": "valid", "step": 2, "dev_wer": 50.0, "dev_cer": 20.0, "best_dev_wer": 40.0}'
    )
    with_loss = ValidRecord(
        step=2, dev_wer=50.0, dev_cer=20.0, best_dev_wer=40.0, dev_ctc_loss_per_token=0.5
    )
    assert list(with_loss.to_dict())[-1] == "dev_ctc_loss_per_token"


def test_written_records_read_back_by_kind(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    valid = ValidRecord(
        step=2, dev_wer=50.0, dev_cer=20.0, best_dev_wer=40.0, dev_ctc_loss_per_token=0.5
    )
    writer.write(TRAIN)
    writer.write(valid)
    writer.close()
    metrics = read_metrics(tmp_path)
    assert metrics.train == [TRAIN] and metrics.valid == [valid]


def test_records_of_earlier_versions_read_with_their_gaps(tmp_path: Path) -> None:
    old_train = TRAIN.to_dict()
    del old_train["ctc_loss_per_token"]
    old_valid = {"kind": "valid", "step": 2, "dev_wer": 50.0, "best_dev_wer": 40.0}
    lines = [old_train, old_valid, {"kind": "another", "step": 2}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    metrics = read_metrics(tmp_path)
    assert math.isnan(metrics.train[0].ctc_loss_per_token)
    assert math.isnan(metrics.valid[0].dev_cer)
    assert metrics.valid[0].dev_ctc_loss_per_token is None


def test_a_line_that_is_no_record_is_named_and_no_file_is_no_records(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n')
    with pytest.raises(MetricsFileError, match=r"metrics.jsonl, line 1"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path / "missing") == RunMetrics(train=[], valid=[])
