"""Checkpoint files: atomic writes, clear errors on damage, averaging."""

from pathlib import Path

import pytest
import torch

from omnirouter.train import checkpoint as ckpt


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "step-00000005.pt"
    ckpt.save_checkpoint(path, {"step": 5, "model": {"w": torch.arange(4.0)}})
    payload = ckpt.load_checkpoint(path)
    assert payload["step"] == 5 and torch.equal(payload["model"]["w"], torch.arange(4.0))
    assert not list(path.parent.glob("*.tmp")), "no temporary file is left behind"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "step-00000001.pt"
    ckpt.save_checkpoint(path, {"step": 1, "model": {"w": torch.randn(1000)}})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    else:
        path.write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match=r"truncated or corrupt.*earlier checkpoint"):
        ckpt.load_checkpoint(path)


def test_foreign_file_and_missing_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ckpt.CheckpointError, match="not an omnirouter checkpoint"):
        ckpt.load_checkpoint(foreign)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_average_is_the_elementwise_mean(tmp_path: Path) -> None:
    paths = []
    for step, value in [(1, 1.0), (2, 2.0), (3, 6.0)]:
        path = ckpt.step_checkpoint_path(tmp_path, step)
        ckpt.save_checkpoint(
            path, {"step": step, "config": {}, "model": {"w": torch.full((3,), value)}}
        )
        paths.append(path)
    averaged = ckpt.average_checkpoints(ckpt.step_checkpoints(tmp_path))
    torch.testing.assert_close(averaged["model"]["w"], torch.full((3,), 3.0))
    assert averaged["step"] == 3
    assert ckpt.step_checkpoints(tmp_path) == paths


def test_pruning_keeps_the_newest(tmp_path: Path) -> None:
    for step in (10, 2, 30, 4):
        ckpt.save_checkpoint(ckpt.step_checkpoint_path(tmp_path, step), {"step": step})
    ckpt.prune_step_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in ckpt.step_checkpoints(tmp_path)] == [
        "step-00000010.pt",
        "step-00000030.pt",
    ]
