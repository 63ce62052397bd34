"""A trained model's files as inference reads them: the experiment directory, checkpoints read
with clear errors, exported models, and `load_inference_model`.

train/checkpoint.py writes these files and resumes from them; reading them needs only model/,
data/ and the top-level config, so evaluation, analysis and the pipeline load a model without
the training code. A checkpoint is read with `torch.load(weights_only=True)`: it is data, never
code, and a file that holds other objects than tensors and plain Python values is refused.

An experiment directory:
    EXP/config.yaml                  the resolved training config (model, data and train parts)
    EXP/tokenizer/                   a copy of the tokenizer the run was trained with
    EXP/checkpoints/step-XXXXXXXX.pt the last `train.keep_last` step checkpoints
    EXP/checkpoints/best.pt          the step with the best dev WER so far
    EXP/metrics.jsonl, EXP/train.log, EXP/tensorboard/

An exported model (`omnirouter export EXP --out DIR`), the form weights are shared in:
    DIR/model.safetensors            the weights (safetensors: a JSON header and raw tensors)
    DIR/config.json                  the model and data configs, the tokenizer, the step
    DIR/tokenizer/                   the sentencepiece model
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

import omnirouter
from omnirouter.config import config_from_dict, config_to_dict, load_config_section
from omnirouter.data.config import DataConfig
from omnirouter.data.tokenizer import INFO_FILE, MODEL_FILE, Tokenizer
from omnirouter.errors import OmnirouterError
from omnirouter.model import CtcModel, ModelConfig, build_model

CHECKPOINT_VERSION = 1
RUN_CONFIG_FILE = "config.yaml"  # EXP/config.yaml, the resolved training config
CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
TOKENIZER_DIR = "tokenizer"
EXPORT_WEIGHTS_FILE = "model.safetensors"
EXPORT_CONFIG_FILE = "config.json"
EXPORT_FORMAT = "omnirouter-ctc"  # config.json's "format"
EXPORT_VERSION = 1
_STEP_PATTERN = re.compile(r"step-(\d+)\.pt$")

# Checkpoints written before the trainer kept numpy's RNG state as a list hold its key as a
# uint32 ndarray. Rebuilding an array runs no other code, so these (and only these) are allowed
# besides torch's own; a pickle names them after numpy 1's or numpy 2's modules.
_RECONSTRUCT_ARRAY = np.empty(0).__reduce__()[0]
_UINT32_DTYPE = type(np.dtype(np.uint32))  # numpy.dtypes.UInt32DType under numpy 2
_NUMPY_ARRAY_GLOBALS: list[tuple[Any, str]] = [
    (np.ndarray, "numpy.ndarray"),
    (np.dtype, "numpy.dtype"),
    (_UINT32_DTYPE, f"{_UINT32_DTYPE.__module__}.{_UINT32_DTYPE.__qualname__}"),
    (_RECONSTRUCT_ARRAY, "numpy.core.multiarray._reconstruct"),
    (_RECONSTRUCT_ARRAY, "numpy._core.multiarray._reconstruct"),
]
_ALLOWED_NAMES = {name for _, name in _NUMPY_ARRAY_GLOBALS}


class CheckpointError(OmnirouterError, RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, of another format, or that holds
    objects a checkpoint must not hold."""


def step_checkpoint_path(exp_dir: str | Path, step: int) -> Path:
    return Path(exp_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def step_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Step checkpoints of an experiment, oldest first."""
    directory = Path(exp_dir) / CHECKPOINT_DIR
    return sorted(directory.glob("step-*.pt"), key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    """The step in a step checkpoint's name; -1 for another name."""
    match = _STEP_PATTERN.search(path.name)
    return int(match.group(1)) if match else -1


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's payload (a dict of tensors and plain Python values)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
    ) as error:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain Python values "
                f"({', '.join(unsafe)}): refused, since loading them could run any code. "
                "A checkpoint written by this version of omnirouter holds none"
            ) from None
        first_line = next(iter(str(error).splitlines()), "")
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {first_line}); "
            "resume from an earlier checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is not an omnirouter checkpoint of version {CHECKPOINT_VERSION}"
        )
    return payload


def _unsafe_globals(path: Path) -> list[str]:
    """The names of the classes and functions in a checkpoint's pickle that `load_checkpoint`
    does not allow; none for a file too damaged to list them."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a truncated or corrupt file: reported as such
        return []
    return [name for name in names if name not in _ALLOWED_NAMES]


def stored_configs(payload: dict[str, Any]) -> tuple[ModelConfig, DataConfig]:
    """The model and data parts of the training config a checkpoint holds (its training recipe
    is the trainer's business)."""
    config = payload["config"]
    return (
        config_from_dict(ModelConfig, config.get("model", {})),
        config_from_dict(DataConfig, config.get("data", {})),
    )


def experiment_data_config(exp_dir: str | Path) -> DataConfig:
    """The data part of EXP/config.yaml."""
    return load_config_section(DataConfig, Path(exp_dir) / RUN_CONFIG_FILE, "data")


@dataclass(frozen=True)
class LoadedModel:
    model: CtcModel  # in eval mode, on the requested device
    tokenizer: Tokenizer
    model_config: ModelConfig
    data_config: DataConfig
    experiment_dir: Path | None  # or an exported model's directory; `eval` writes under it
    checkpoint_path: Path  # or an exported model's weights file
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
    """The model of an experiment (its best checkpoint, else its last), of a checkpoint file, or
    of a directory written by `export_inference_model`."""
    if is_exported_model(path):
        return _load_exported(Path(path), device)
    checkpoint_path, exp_dir = resolve_checkpoint(path)
    payload = load_checkpoint(checkpoint_path)
    model_config, data_config = stored_configs(payload)
    tokenizer = _tokenizer_of(payload, exp_dir)
    model = build_model(model_config, tokenizer.vocab_size)
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_config=model_config,
        data_config=data_config,
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


def is_exported_model(path: str | Path) -> bool:
    return (Path(path) / EXPORT_WEIGHTS_FILE).is_file()


def export_inference_model(
    source: str | Path, out_dir: str | Path, overwrite: bool = False
) -> Path:
    """Write the model of `source` (anything `load_inference_model` reads) to `out_dir` as
    model.safetensors, config.json and tokenizer/; return `out_dir`.

    The files are written to a temporary directory beside `out_dir` and moved into place
    whole. An `out_dir` that holds anything is refused unless `overwrite`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty (overwrite to replace it)")
        if not is_exported_model(out_dir):
            raise FileExistsError(f"{out_dir} holds something other than an exported model")
    loaded = load_inference_model(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        # save_model rather than save_file: should two names ever share a tensor, it is stored
        # once, where save_file would refuse it.
        safetensors.torch.save_model(loaded.model, str(staging / EXPORT_WEIGHTS_FILE))
        tokenizer_dir = staging / TOKENIZER_DIR
        tokenizer_dir.mkdir()
        shutil.copyfile(loaded.tokenizer.model_path, tokenizer_dir / MODEL_FILE)
        info = loaded.tokenizer.model_path.with_name(INFO_FILE)
        if info.is_file():
            shutil.copyfile(info, tokenizer_dir / INFO_FILE)
        config = {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_VERSION,
            "model": config_to_dict(loaded.model_config),
            "data": config_to_dict(loaded.data_config),
            "tokenizer": {
                "directory": TOKENIZER_DIR,
                "type": "sentencepiece",
                "vocab_size": loaded.tokenizer.vocab_size,
                "blank_id": 0,
                "sha256": hashlib.sha256(loaded.tokenizer.model_path.read_bytes()).hexdigest(),
            },
            "step": loaded.step,
            "exported_from": str(loaded.checkpoint_path),
            "omnirouter_version": omnirouter.__version__,
        }
        (staging / EXPORT_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _load_exported(directory: Path, device: str | torch.device) -> LoadedModel:
    config_path = directory / EXPORT_CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{config_path}: cannot read an exported model's config ({error})"
        ) from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{config_path} is not the config of an exported omnirouter model")
    if config.get("format_version") != EXPORT_VERSION:
        raise CheckpointError(
            f"{config_path}: format version {config.get('format_version')} is not "
            f"{EXPORT_VERSION}, the version this omnirouter reads"
        )
    try:
        model_config = config_from_dict(ModelConfig, config["model"])
        data_config = config_from_dict(DataConfig, config["data"])
        tokenizer_dir = directory / config["tokenizer"]["directory"]
        vocab_size = int(config["tokenizer"]["vocab_size"])
        step = int(config["step"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path}: a missing or bad entry ({error})") from None
    tokenizer = Tokenizer.load(tokenizer_dir)
    if tokenizer.vocab_size != vocab_size:
        raise CheckpointError(
            f"{tokenizer_dir}: {tokenizer.vocab_size} pieces, but the model was exported with "
            f"{vocab_size}"
        )
    model = build_model(model_config, tokenizer.vocab_size)
    weights = directory / EXPORT_WEIGHTS_FILE
    try:
        safetensors.torch.load_model(model, weights, strict=True)
    except (safetensors.SafetensorError, RuntimeError, OSError) as error:
        first_line = next(iter(str(error).splitlines()), "")
        raise CheckpointError(
            f"{weights} is truncated, corrupt or not this model's weights "
            f"({type(error).__name__}: {first_line}); export the model again"
        ) from None
    model.to(device).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_config=model_config,
        data_config=data_config,
        experiment_dir=directory,
        checkpoint_path=weights,
        step=step,
    )
