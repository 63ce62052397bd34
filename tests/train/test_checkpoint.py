"""Checkpoint files: atomic writes, clear errors on damage, no code run on loading, averaging."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from omnirouter.evaluate import model_file
from omnirouter.train import checkpoint as ckpt


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "step-00000005.pt"
    ckpt.save_checkpoint(path, {"step": 5, "model": {"w": torch.arange(4.0)}})
    payload = model_file.load_checkpoint(path)
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
    with pytest.raises(
        model_file.CheckpointError, match=r"truncated or corrupt.*earlier checkpoint"
    ):
        model_file.load_checkpoint(path)


def test_foreign_file_and_missing_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(model_file.CheckpointError, match="not an omnirouter checkpoint"):
        model_file.load_checkpoint(foreign)
    with pytest.raises(model_file.CheckpointError, match="does not exist"):
        model_file.load_checkpoint(tmp_path / "missing.pt")


class RunsCode:
    """An object whose unpickling runs a shell command, as a malicious checkpoint's would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path, marker = tmp_path / "step-00000001.pt", tmp_path / "MARKER"
    # Written as the trainer writes, so only its content differs from a real checkpoint's.
    ckpt.save_checkpoint(path, {"step": 1, "model": {"w": torch.zeros(2)}, "x": RunsCode(marker)})
    with pytest.raises(model_file.CheckpointError, match=r"step-00000001\.pt.*system.*refused"):
        model_file.load_checkpoint(path)
    assert not marker.exists()


def test_rng_state_is_saved_in_plain_types_and_restored(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # numpy's state holds a cached Gaussian after an odd number of draws
    path = tmp_path / "step-00000001.pt"
    ckpt.save_checkpoint(path, {"step": 1, "rng": ckpt.capture_rng_state()})
    expected = (random.random(), np.random.normal(), torch.rand(1))
    # Only torch's own types and plain Python values: loadable with no allow-list at all.
    torch.load(path, weights_only=True)
    ckpt.restore_rng_state(model_file.load_checkpoint(path)["rng"])
    assert (random.random(), np.random.normal(), torch.rand(1)) == expected


def test_a_checkpoint_with_numpy_rng_state_of_earlier_versions_loads(tmp_path: Path) -> None:
    """Checkpoints written before the RNG state was kept in plain types hold numpy's as an
    array; they still load (an array runs no code) and resume the same draws."""
    np.random.seed(4)
    path = tmp_path / "step-00000001.pt"
    ckpt.save_checkpoint(path, {"step": 1, "rng": {"numpy": np.random.get_state()}})
    expected = np.random.random(3)
    np.random.set_state(model_file.load_checkpoint(path)["rng"]["numpy"])
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_average_is_the_elementwise_mean(tmp_path: Path) -> None:
    paths = []
    for step, value in [(1, 1.0), (2, 2.0), (3, 6.0)]:
        path = model_file.step_checkpoint_path(tmp_path, step)
        ckpt.save_checkpoint(
            path, {"step": step, "config": {}, "model": {"w": torch.full((3,), value)}}
        )
        paths.append(path)
    averaged = ckpt.average_checkpoints(model_file.step_checkpoints(tmp_path))
    torch.testing.assert_close(averaged["model"]["w"], torch.full((3,), 3.0))
    assert averaged["step"] == 3
    assert model_file.step_checkpoints(tmp_path) == paths


def test_pruning_keeps_the_newest(tmp_path: Path) -> None:
    for step in (10, 2, 30, 4):
        ckpt.save_checkpoint(model_file.step_checkpoint_path(tmp_path, step), {"step": step})
    ckpt.prune_step_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in model_file.step_checkpoints(tmp_path)] == [
        "step-00000010.pt",
        "step-00000030.pt",
    ]
