"""Checkpoints, the writing side: atomic writes, RNG capture, resume, pruning and averaging.

Reading a checkpoint (with clear errors on damaged files) and the experiment directory's layout
live in `omnirouter.evaluate.model_file`, which inference needs without the training code.
A checkpoint holds only tensors and plain Python values (dict, list, tuple, str, int, float,
bool, bytes, None), so that it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnirouter.config import config_from_dict
from omnirouter.evaluate.model_file import (
    CHECKPOINT_VERSION,
    CheckpointError,
    checkpoint_step,
    load_checkpoint,
    step_checkpoints,
)
from omnirouter.train.config import RunConfig
from omnirouter.train.metrics import read_metrics

log = logging.getLogger(__name__)


def best_step_checkpoints(exp_dir: str | Path, paths: list[Path]) -> list[Path]:
    """Those of `paths` with a dev WER in metrics.jsonl, worst first (so [-n:] are the n best)."""
    wer_at = {record.step: record.dev_wer for record in read_metrics(exp_dir).valid}
    scored = [(wer_at[step], path) for path in paths if (step := checkpoint_step(path)) in wer_at]
    if not scored:
        raise CheckpointError(f"{exp_dir}: no kept checkpoint has a dev WER in metrics.jsonl")
    return [path for _, path in sorted(scored, key=lambda pair: -pair[0])]


def newest_loadable_checkpoint(paths: list[Path]) -> tuple[Path, dict[str, Any]]:
    """The newest of `paths` (oldest first) that loads, with its payload: a checkpoint
    damaged after it was written (a full disk, a copy cut short) is passed over, with a
    warning, for the one before it."""
    for path in reversed(paths):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as error:
            log.warning("%s: passed over for an earlier checkpoint", error)
    raise CheckpointError(f"no checkpoint of {[str(path) for path in paths]} can be read")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same directory, flush it to disk, then rename: a kill at
    any moment leaves either the old file or the complete new one, never half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save({"version": CHECKPOINT_VERSION, **payload}, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def prune_step_checkpoints(exp_dir: str | Path, keep_last: int) -> None:
    for path in step_checkpoints(exp_dir)[:-keep_last] if keep_last > 0 else []:
        path.unlink(missing_ok=True)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG's state, in plain types and tensors (see the module's docstring)."""
    name, key, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        # np.random.set_state takes the key as a list as well as an array.
        "numpy": (name, key.tolist(), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_config_of(payload: dict[str, Any]) -> RunConfig:
    return config_from_dict(RunConfig, payload["config"])


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Element-wise mean of the model weights of several checkpoints (icefall/ESPnet style);
    the rest of the payload (config, tokenizer) is taken from the last one."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    payloads = [load_checkpoint(path) for path in paths]
    states = [payload["model"] for payload in payloads]
    averaged = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            averaged[key] = (
                sum(state[key].double() for state in states).div(len(states)).to(value.dtype)
            )
        else:
            averaged[key] = value  # integer buffers (none today) are taken from the last
    last = payloads[-1]
    return {key: last[key] for key in ("step", "config", "tokenizer_model") if key in last} | {
        "model": averaged,
        "averaged_from": [str(path) for path in paths],
    }
