"""Checkpoints: atomic writes, clear errors on damaged files, RNG capture, inference loading.

An experiment directory:
    EXP/config.yaml                  the resolved RunConfig
    EXP/tokenizer/                   a copy of the tokenizer the run was trained with
    EXP/checkpoints/step-XXXXXXXX.pt the last `keep_last` step checkpoints
    EXP/checkpoints/best.pt          the step with the best dev WER so far
    EXP/metrics.jsonl, EXP/train.log, EXP/tensorboard/
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnirouter.config import config_from_dict
from omnirouter.data.config import DataConfig
from omnirouter.data.tokenizer import MODEL_FILE, Tokenizer
from omnirouter.errors import OmnirouterError
from omnirouter.model import CtcModel, ModelConfig, build_model
from omnirouter.train.config import RunConfig

CHECKPOINT_VERSION = 1
RUN_CONFIG_FILE = "config.yaml"  # EXP/config.yaml, the resolved RunConfig
CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
TOKENIZER_DIR = "tokenizer"
_STEP_PATTERN = re.compile(r"step-(\d+)\.pt$")


class CheckpointError(OmnirouterError, RuntimeError):
    """A checkpoint that is missing, truncated, corrupt or of another format."""


def step_checkpoint_path(exp_dir: str | Path, step: int) -> Path:
    return Path(exp_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def step_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Step checkpoints of an experiment, oldest first."""
    directory = Path(exp_dir) / CHECKPOINT_DIR
    return sorted(directory.glob("step-*.pt"), key=_step_of)


def best_step_checkpoints(exp_dir: str | Path, paths: list[Path]) -> list[Path]:
    """Those of `paths` with a dev WER in metrics.jsonl, worst first (so [-n:] are the n best)."""
    from omnirouter.train.metrics import read_metrics

    wer_at = {record["step"]: record["dev_wer"] for record in read_metrics(exp_dir, "valid")}
    scored = [(wer_at[step], path) for path in paths if (step := _step_of(path)) in wer_at]
    if not scored:
        raise CheckpointError(f"{exp_dir}: no kept checkpoint has a dev WER in metrics.jsonl")
    return [path for _, path in sorted(scored, key=lambda pair: -pair[0])]


def _step_of(path: Path) -> int:
    match = _STEP_PATTERN.search(path.name)
    return int(match.group(1)) if match else -1


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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: our checkpoints hold plain Python state (RNG, loader) besides
        # tensors. Only load checkpoints you trust, as with any pickle.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
    ) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}); "
            "resume from an earlier checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is not an omnirouter checkpoint of version {CHECKPOINT_VERSION}"
        )
    return payload


def prune_step_checkpoints(exp_dir: str | Path, keep_last: int) -> None:
    for path in step_checkpoints(exp_dir)[:-keep_last] if keep_last > 0 else []:
        path.unlink(missing_ok=True)


def capture_rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
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


@dataclass(frozen=True)
class LoadedModel:
    model: CtcModel  # in eval mode, on the requested device
    tokenizer: Tokenizer
    model_config: ModelConfig
    data_config: DataConfig
    experiment_dir: Path | None
    checkpoint_path: Path
    step: int


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint file, experiment dir or None) for an experiment dir or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        best = path / CHECKPOINT_DIR / BEST_NAME
        candidates = [best] if best.is_file() else step_checkpoints(path)[-1:]
        if not candidates:
            raise CheckpointError(f"{path} holds no checkpoint (looked in {path / CHECKPOINT_DIR})")
        return candidates[0], path
    exp_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else None
    return path, exp_dir


def load_inference_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of an experiment (its best checkpoint, else its last) or of a checkpoint file."""
    checkpoint_path, exp_dir = resolve_checkpoint(path)
    payload = load_checkpoint(checkpoint_path)
    config = run_config_of(payload)
    tokenizer = _tokenizer_of(payload, exp_dir)
    model = build_model(config.model, tokenizer.vocab_size)
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_config=config.model,
        data_config=config.data,
        experiment_dir=exp_dir,
        checkpoint_path=checkpoint_path,
        step=int(payload["step"]),
    )


def _tokenizer_of(payload: dict[str, Any], exp_dir: Path | None) -> Tokenizer:
    if exp_dir is not None and (exp_dir / TOKENIZER_DIR / MODEL_FILE).is_file():
        return Tokenizer.load(exp_dir / TOKENIZER_DIR)
    # A checkpoint file on its own carries its tokenizer's bytes; they are written once to a
    # cache named by their hash, so loading the same checkpoint again writes nothing.
    model_bytes = payload["tokenizer_model"]
    digest = hashlib.sha256(model_bytes).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"omnirouter-tokenizer-{digest}"
    if not (cache / MODEL_FILE).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        temporary = cache / f".{MODEL_FILE}.{os.getpid()}.tmp"
        temporary.write_bytes(model_bytes)
        os.replace(temporary, cache / MODEL_FILE)
    return Tokenizer.load(cache)


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
