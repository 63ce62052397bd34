"""One training run of an experiment: is it finished, can it be continued, train or resume it.

A run is finished when its step checkpoint of `train.max_steps` exists, or when it stopped
early: the trainer reports that in its result only, so after `train` returns this module
writes `EXP/done.json` (the step, whether it stopped early, the best dev WER), and a stopped
run counts as finished while its last step checkpoint is the one done.json names.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from omnirouter.config import ConfigError, config_to_dict, differing_keys, load_config
from omnirouter.errors import InterruptedRunError
from omnirouter.evaluate import model_file
from omnirouter.experiment.config import PlannedRun
from omnirouter.locks import LOCK_FILE, directory_lock
from omnirouter.train import checkpoint as ckpt
from omnirouter.train import trainer
from omnirouter.train.config import RunConfig

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
# Keys a run may change between invocations and still be continued: more steps, another
# device, other loader processes, how often it logs and saves, the console bar, where the
# corpus lies (a moved or copied experiment; the corpus stage checks what it holds). Any other
# change needs a fresh run.
CONTINUABLE_KEYS = frozenset(
    {
        "data.corpus_dir",
        "train.max_steps",
        "train.device",
        "train.progress",
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_last",
        "data.num_workers",
    }
)


class TrainingInterruptedError(InterruptedRunError):
    """Training was interrupted (Ctrl-C, SIGTERM) after saving a checkpoint."""


@dataclass(frozen=True)
class RunState:
    finished: bool
    started: bool  # it has a step checkpoint to continue from
    step: int  # of its last step checkpoint; 0 when there is none
    note: str  # what was found, for the log and stages.json


def run_state(run: PlannedRun) -> RunState:
    checkpoints = model_file.step_checkpoints(run.exp_dir)
    if not checkpoints:
        return RunState(False, False, 0, "not started")
    done = read_done(run.exp_dir)
    if model_file.step_checkpoint_path(run.exp_dir, run.config.train.max_steps).is_file():
        step = run.config.train.max_steps
        return RunState(True, True, step, f"finished at step {step}")
    if done and done["stopped_early"] and checkpoints[-1] == _checkpoint(run, done["step"]):
        return RunState(True, True, done["step"], f"stopped early at step {done['step']}")
    step = int(ckpt.newest_loadable_checkpoint(checkpoints)[1]["step"])
    return RunState(False, True, step, f"continued from step {step}")


def check_saved_config(run: PlannedRun) -> None:
    """Refuse to reuse or continue a run trained with another configuration."""
    path = run.exp_dir / model_file.RUN_CONFIG_FILE
    if not path.is_file():
        return
    try:
        saved = load_config(RunConfig, [path])
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read ({error}): remove {run.exp_dir}") from None
    changed = sorted(set(differing_keys(config_to_dict(saved), config_to_dict(run.config))))
    blocking = [key for key in changed if key not in CONTINUABLE_KEYS]
    if blocking:
        raise ConfigError(
            f"{run.exp_dir} was trained with another configuration ({', '.join(blocking)} "
            f"differ from the experiment's {run.model} model): re-run with "
            "--force-stage train to train again, or restore the configuration"
        )


def train_run(run: PlannedRun, state: RunState) -> RunState:
    """Train the run, or continue it from its last checkpoint; return its new state. The
    run's directory is locked from before it is cleared until done.json is written."""
    with directory_lock(run.exp_dir, f"omnirouter experiment: training {run.label}"):
        if not state.started:
            # Nothing to continue from; old metrics would mix with the new run's.
            _empty_directory(run.exp_dir, "it holds no checkpoint")
        result = trainer.train(run.config, run.exp_dir, resume=state.started)
        if result.interrupted:
            raise TrainingInterruptedError(
                f"training of {run.label} was interrupted at step {result.step} (checkpoint "
                "saved): run the same command again (without --force-stage) to continue",
                result.stop_signal or signal.SIGTERM,
            )
        write_done(run.exp_dir, result.step, result.stopped_early, result.best_dev_wer)
    return run_state(run)


def remove_run(run: PlannedRun) -> None:
    if run.exp_dir.exists():
        with directory_lock(run.exp_dir, f"omnirouter experiment: removing {run.label}"):
            _empty_directory(run.exp_dir, "to train it again")


def _empty_directory(directory: Path, reason: str) -> None:
    """Remove what `directory` holds except its lock file (whose lock this process holds:
    a new file in its place would be free for another process to lock)."""
    contents = [path for path in directory.iterdir() if path.name != LOCK_FILE]
    if contents:
        log.warning("removing the contents of %s: %s", directory, reason)
    for path in contents:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def write_done(exp_dir: Path, step: int, stopped_early: bool, best_dev_wer: float | None) -> Path:
    path = exp_dir / DONE_FILE
    record = {"step": step, "stopped_early": stopped_early, "best_dev_wer": best_dev_wer}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_done(exp_dir: Path) -> dict | None:
    path = exp_dir / DONE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return {
            "step": int(record["step"]),
            "stopped_early": bool(record["stopped_early"]),
            "best_dev_wer": record.get("best_dev_wer"),
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("%s is unreadable: ignoring it", path)
        return None


def trained_step(run: PlannedRun) -> int:
    """The step of the run's last checkpoint (0 before training)."""
    return run_state(run).step


def newest_checkpoint_time(exp_dir: Path) -> float:
    """Modification time of the newest checkpoint file (step or best); 0 when there is none."""
    directory = exp_dir / model_file.CHECKPOINT_DIR
    times = [path.stat().st_mtime for path in directory.glob("*.pt")] if directory.is_dir() else []
    return max(times, default=0.0)


def _checkpoint(run: PlannedRun, step: int) -> Path:
    return model_file.step_checkpoint_path(run.exp_dir, step)
