"""The training loop: set-up, resume, steps, validation, checkpoints, early stop, clean exit.

`train(config, exp_dir, resume=False)` is the one entry point; `omnirouter train` and torchrun
both end up here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from omnirouter.config import config_to_dict, differing_keys, save_config
from omnirouter.data.batch import Batch
from omnirouter.data.loader import TrainLoader, build_eval_loader, build_train_loader, eval_cuts
from omnirouter.data.prepare import train_corpus_tokenizer
from omnirouter.data.tokenizer import MODEL_FILE, Tokenizer
from omnirouter.errors import OmnirouterError, WorkFailedError
from omnirouter.evaluate import model_file
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.recognize import recognize
from omnirouter.evaluate.wer import score_set
from omnirouter.locks import DirectoryBusyError, directory_lock
from omnirouter.model import build_model, count_parameters
from omnirouter.train import checkpoint as ckpt
from omnirouter.train.config import RunConfig
from omnirouter.train.distributed import (
    Runtime,
    any_rank,
    broadcast_flag,
    start_runtime,
    stop_runtime,
)
from omnirouter.train.interrupts import (
    catch_interrupts,
    first_signal,
    restore_interrupts,
    stop_requested_from_outside,
)
from omnirouter.train.losses import DevLoss
from omnirouter.train.metrics import MetricsWriter, TrainRecord, ValidRecord, attach_log_file
from omnirouter.train.optimizer import build_optimizer
from omnirouter.train.schedule import lr_multiplier
from omnirouter.train.step import StepStats, train_step

log = logging.getLogger(__name__)


class TrainingError(OmnirouterError, RuntimeError):
    """A run that cannot start or go on (an existing experiment, ...)."""


class DivergedError(WorkFailedError, TrainingError):
    """Too many non-finite steps in a row: the run failed, its input may be fine."""


@dataclass(frozen=True)
class TrainResult:
    exp_dir: Path
    step: int
    best_dev_wer: float | None
    stopped_early: bool
    interrupted: bool
    # The signal that interrupted it: SIGINT or SIGTERM, SIGTERM too when the stop came from
    # another rank or from a parent process that has gone; None when not interrupted.
    stop_signal: int | None = None


@dataclass
class _Progress:
    """The loop's own state, saved in every checkpoint."""

    step: int = 0
    best_dev_wer: float = math.inf
    validations_without_improvement: int = 0
    consecutive_nonfinite: int = 0
    skipped_nonfinite: int = 0


def train(config: RunConfig, exp_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train into `exp_dir` (or continue it), holding its lock: a second run into the same
    directory is refused before it writes anything."""
    runtime = start_runtime(config.train.device, config.train.precision)
    trainer = _Trainer(config, Path(exp_dir), runtime)
    try:
        with _exp_dir_lock(Path(exp_dir), runtime):
            return trainer.run(resume)
    finally:
        trainer.detach_log_file()
        stop_runtime(runtime)


@contextlib.contextmanager
def _exp_dir_lock(exp_dir: Path, runtime: Runtime) -> Iterator[None]:
    """Rank 0 holds the directory's lock for the whole torchrun job (the only rank that
    writes there); every rank learns whether it got it, so that all of them stop if not."""
    with contextlib.ExitStack() as stack:
        refused: DirectoryBusyError | None = None
        if runtime.is_main:
            try:
                stack.enter_context(directory_lock(exp_dir, "omnirouter train"))
            except DirectoryBusyError as error:
                refused = error
        if not broadcast_flag(runtime, refused is None):
            raise refused or DirectoryBusyError(exp_dir, None)
        yield


class _Trainer:
    def __init__(self, config: RunConfig, exp_dir: Path, runtime: Runtime) -> None:
        self.config = config
        self.exp_dir = exp_dir
        self.runtime = runtime
        self.progress = _Progress()
        self.stop_signalled = False  # Ctrl-C or SIGTERM reached this process
        self.interrupted = False  # ... or any rank: agreed by every rank after each step
        self.saved_step = 0  # the step of the newest checkpoint; step 0 (fresh weights) needs none
        self.log_handler: logging.Handler | None = None

    def detach_log_file(self) -> None:
        """Stop mirroring the log into this run's train.log (a next run in the same process
        gets its own)."""
        if self.log_handler is not None:
            logging.getLogger("omnirouter").removeHandler(self.log_handler)
            self.log_handler.close()
            self.log_handler = None

    def request_stop(self) -> bool:
        """Ctrl-C or SIGTERM: stop after this step; True when a stop had already reached this
        process (a second signal aborts). A stop agreed because another rank was signalled does
        not count: this rank's first signal must not abort the collective final save."""
        already = self.stop_signalled
        self.stop_signalled = True
        return already

    # ---------------------------------------------------------------- set-up

    def run(self, resume: bool) -> TrainResult:
        config, runtime = self.config, self.runtime
        latest, payload = self._check_exp_dir(resume)
        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        self.tokenizer = self._tokenizer()
        self.model = build_model(config.model, self.tokenizer.vocab_size).to(runtime.device)
        self.optimizer = build_optimizer(self.model, config.train.optimizer)
        self.loader = build_train_loader(
            config.data,
            self.tokenizer,
            seed=config.train.seed,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )
        if payload is not None:
            self._restore(payload)
            self.saved_step = self.progress.step
        self.ddp_model: nn.Module = (
            DistributedDataParallel(
                self.model,
                device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
            )
            if runtime.distributed
            else self.model
        )
        self.metrics = MetricsWriter(self.exp_dir, self.progress.step) if runtime.is_main else None
        self._announce(latest)
        batches = self._batches()
        if payload is not None:
            # Creating the data iterator may draw from the global RNG; the uninterrupted run had
            # drawn before this point, so the saved state is restored after it.
            ckpt.restore_rng_state(payload["rng"])
        return self._loop(batches)

    def _check_exp_dir(self, resume: bool) -> tuple[Path | None, dict[str, Any] | None]:
        """The checkpoint to resume from and its payload (None, None for a fresh run)."""
        existing = model_file.step_checkpoints(self.exp_dir)
        if existing and not resume:
            raise TrainingError(
                f"{self.exp_dir} already holds checkpoints: pass --resume to continue it, "
                "or choose another experiment directory"
            )
        if self.runtime.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.exp_dir / model_file.RUN_CONFIG_FILE)
            self.log_handler = attach_log_file(self.exp_dir)
        if resume and not existing:
            log.warning("--resume: no checkpoint in %s, starting from scratch", self.exp_dir)
        return ckpt.newest_loadable_checkpoint(existing) if existing else (None, None)

    def _tokenizer(self) -> Tokenizer:
        data = self.config.data
        directory = data.tokenizer_dir
        if not (directory / MODEL_FILE).is_file():
            if self.runtime.distributed:
                raise TrainingError(
                    f"no tokenizer at {directory}: train it once before a multi-process run "
                    f"(omnirouter data tokenizer {data.corpus_dir})"
                )
            log.info("training the tokenizer in %s", directory)
            train_corpus_tokenizer(data.corpus_dir, data.tokenizer, data.train_sets)
        if self.runtime.is_main:
            copy = self.exp_dir / model_file.TOKENIZER_DIR
            copy.mkdir(parents=True, exist_ok=True)
            for path in directory.iterdir():
                if path.is_file():
                    shutil.copy2(path, copy / path.name)
        return Tokenizer.load(directory)

    def _restore(self, payload: dict[str, Any]) -> None:
        saved = ckpt.run_config_of(payload)
        if saved.model != self.config.model:
            changed = differing_keys(
                config_to_dict(saved.model), config_to_dict(self.config.model), "model."
            )
            raise TrainingError(
                f"the checkpoint's model config differs from this run's in {', '.join(changed)}: "
                "cannot resume (train into another experiment directory, or restore them)"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.loader.load_state_dict(payload["loader"][self.runtime.rank])
        self.progress = _Progress(**payload["progress"])
        log.info("resumed from step %d", self.progress.step)

    def _announce(self, latest: Path | None) -> None:
        if not self.runtime.is_main:
            return
        config = self.config
        effective = (
            config.data.max_duration * config.train.grad_accumulation * self.runtime.world_size
        )
        log.info(
            "%s model, %.2fM parameters, vocabulary %d; %d device(s) %s, precision %s; "
            "effective batch <= %.0f s of audio (%.0f s x %d accumulation x %d devices)",
            config.model.family.value,
            count_parameters(self.model) / 1e6,
            self.tokenizer.vocab_size,
            self.runtime.world_size,
            self.runtime.device,
            "bf16 autocast" if self.runtime.autocast_dtype else "fp32",
            effective,
            config.data.max_duration,
            config.train.grad_accumulation,
            self.runtime.world_size,
        )

    def _batches(self) -> Iterator[Batch]:
        """Training batches forever, epoch after epoch (the loader advances its own epoch)."""
        empty_epochs = 0
        while True:
            produced = False
            for batch in self.loader:
                produced = True
                yield batch
            # A run resumed right at the end of an epoch sees one empty pass; two in a row
            # mean the data yields nothing.
            empty_epochs = 0 if produced else empty_epochs + 1
            if empty_epochs == 2:
                raise TrainingError(
                    f"the training sets {self.config.data.train_sets} gave no usable batch "
                    f"(skipped: {self.loader.skipped})"
                )

    # ---------------------------------------------------------------- the loop

    def _loop(self, batches: Iterator[Batch]) -> TrainResult:
        train_config = self.config.train
        previous_handlers = catch_interrupts(self.request_stop)
        bar = tqdm(
            total=train_config.max_steps,
            initial=self.progress.step,
            unit="step",
            disable=not (train_config.progress and self.runtime.is_main),
            dynamic_ncols=True,
        )
        window, window_start = StepStats(), time.perf_counter()
        stopped_early = False
        try:
            while self.progress.step < train_config.max_steps and not self._stop_requested():
                self._set_lr()
                micro = [next(batches) for _ in range(train_config.grad_accumulation)]
                result = train_step(
                    self.ddp_model,
                    self.optimizer,
                    micro,
                    self.runtime,
                    train_config.loss,
                    train_config.optimizer.grad_clip_norm,
                    self.config.data.features.frame_shift_seconds,
                )
                self._count_nonfinite(result.applied)
                self.progress.step += 1
                window.add(result.stats)
                bar.update(1)
                step = self.progress.step
                if step % train_config.log_every == 0 or step == train_config.max_steps:
                    elapsed = time.perf_counter() - window_start
                    self._log_train(window, result.grad_norm, elapsed, bar)
                    window, window_start = StepStats(), time.perf_counter()
                if train_config.valid_every and step % train_config.valid_every == 0:
                    stopped_early = self._validate()
                if step % train_config.checkpoint_every == 0:
                    self._save()
                if stopped_early:
                    break
        finally:
            bar.close()
            restore_interrupts(previous_handlers)
        # The last step is saved whatever ended the run (the step count, an early stop, Ctrl-C),
        # once: not again when it was a checkpoint step.
        if self.progress.step != self.saved_step:
            self._save()
        if self.metrics is not None:
            self.metrics.close()
        best = self.progress.best_dev_wer
        # A signal during the last step still counts: whoever runs this run next stops too.
        interrupted = self.interrupted or self.stop_signalled
        return TrainResult(
            self.exp_dir,
            self.progress.step,
            best if math.isfinite(best) else None,
            stopped_early,
            interrupted,
            int(first_signal() or signal.SIGTERM) if interrupted else None,
        )

    def _stop_requested(self) -> bool:
        """Whether Ctrl-C or SIGTERM reached any rank. A signal can reach one rank only, or
        the ranks in different steps: every rank must stop after the same step, or the others
        would wait in the next step's gradient all-reduce forever."""
        self.stop_signalled = self.stop_signalled or stop_requested_from_outside()
        self.interrupted = any_rank(self.runtime, self.stop_signalled)
        return self.interrupted

    def _set_lr(self) -> None:
        lr = self.config.train.optimizer.peak_lr * lr_multiplier(
            self.progress.step, self.config.train.schedule
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _count_nonfinite(self, applied: bool) -> None:
        progress = self.progress
        if applied:
            progress.consecutive_nonfinite = 0
            return
        progress.skipped_nonfinite += 1
        progress.consecutive_nonfinite += 1
        log.warning("step %d: non-finite loss or gradient, step skipped", progress.step + 1)
        if progress.consecutive_nonfinite >= self.config.train.max_consecutive_nonfinite:
            raise DivergedError(
                f"{progress.consecutive_nonfinite} non-finite steps in a row at step "
                f"{progress.step + 1}: lower train.optimizer.peak_lr, check the data "
                "(utterances too short for their transcripts), or raise "
                "train.max_consecutive_nonfinite"
            )

    def _log_train(self, window: StepStats, grad_norm: float, elapsed: float, bar: tqdm) -> None:
        """Every rank calls this: the record averages the losses over all devices' batches."""
        totals = window.summed_over_ranks(self.runtime)
        micro = max(totals.micro_batches, 1)
        record = TrainRecord(
            step=self.progress.step,
            epoch=self.loader.epoch,
            ctc_loss=totals.ctc_loss / micro,
            ctc_loss_per_token=totals.ctc_loss_sum / max(totals.target_tokens, 1),
            load_balance_loss=totals.load_balance_loss / micro,
            z_loss=totals.z_loss / micro,
            total_loss=totals.total_loss / micro,
            lr=self.optimizer.param_groups[0]["lr"],
            grad_norm=grad_norm,
            audio_seconds_per_second=totals.audio_seconds / max(elapsed, 1e-9),
            expert_load=totals.expert_load(),
            skipped_nonfinite=self.progress.skipped_nonfinite,
            skipped_utterances=sum(self.loader.skipped.values()),
        )
        bar.set_postfix(
            ctc=f"{record.ctc_loss:.3g}",
            lb=f"{record.load_balance_loss:.3g}",
            lr=f"{record.lr:.2e}",
            aps=f"{record.audio_seconds_per_second:.0f}",
        )
        if self.metrics is not None:
            self.metrics.write(record)

    # ---------------------------------------------------------------- validation, checkpoints

    def _validate(self) -> bool:
        """Dev WER on the main rank; True when early stopping says to stop (on every rank)."""
        stop = False
        if self.runtime.is_main:
            data = self.config.data
            cuts = eval_cuts(data, data.dev_set)
            if self.config.train.valid_max_utterances:
                cuts = cuts.subset(first=self.config.train.valid_max_utterances)
            dev_loss = DevLoss()
            recognitions = recognize(
                self.model,
                build_eval_loader(data, cuts, self.tokenizer),
                self.tokenizer,
                self.runtime.device,
                on_output=dev_loss.add,
                progress=False,
            )
            score = score_set(data.dev_set, recognitions, get_normalizer())
            if dev_loss.infeasible:
                log.warning(
                    "%d dev utterance(s) have more tokens than their frames can align: "
                    "left out of the dev CTC loss",
                    dev_loss.infeasible,
                )
            stop = self._track_best(score.wer * 100, score.cer * 100, dev_loss.per_token)
        return broadcast_flag(self.runtime, stop)

    def _track_best(self, wer: float, cer: float, dev_loss_per_token: float | None = None) -> bool:
        progress, train_config = self.progress, self.config.train
        improved = wer < progress.best_dev_wer - train_config.early_stop_min_delta
        if improved:
            progress.best_dev_wer = wer
            progress.validations_without_improvement = 0
            ckpt.save_checkpoint(
                self.exp_dir / model_file.CHECKPOINT_DIR / model_file.BEST_NAME,
                self._payload(loader_states=None),
            )
        else:
            progress.validations_without_improvement += 1
        log.info(
            "step %d: dev WER %.2f%% (best %.2f%%), CER %.2f%%, CTC loss per token %s",
            progress.step,
            wer,
            progress.best_dev_wer,
            cer,
            "n/a" if dev_loss_per_token is None else f"{dev_loss_per_token:.4g}",
        )
        if self.metrics is not None:
            self.metrics.write(
                ValidRecord(
                    step=progress.step,
                    dev_wer=wer,
                    dev_cer=cer,
                    best_dev_wer=progress.best_dev_wer,
                    dev_ctc_loss_per_token=dev_loss_per_token,
                )
            )
        patience = train_config.early_stop_patience
        if patience and progress.validations_without_improvement >= patience:
            log.info("dev WER has not improved for %d validations: stopping early", patience)
            return True
        return False

    def _save(self) -> None:
        loader_states = _gather_loader_states(self.runtime, self.loader)
        self.saved_step = self.progress.step  # on every rank: the final save is collective
        if not self.runtime.is_main:
            return
        path = model_file.step_checkpoint_path(self.exp_dir, self.progress.step)
        ckpt.save_checkpoint(path, self._payload(loader_states))
        ckpt.prune_step_checkpoints(self.exp_dir, self.config.train.keep_last)
        log.info("checkpoint %s", path)

    def _payload(self, loader_states: list[dict[str, Any]] | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "step": self.progress.step,
            "model": self.model.state_dict(),
            "config": config_to_dict(self.config),
            "tokenizer_model": self.tokenizer.model_path.read_bytes(),
            "progress": vars(self.progress).copy(),
        }
        if loader_states is not None:  # a resumable checkpoint, not only weights
            payload |= {
                "optimizer": self.optimizer.state_dict(),
                "loader": loader_states,
                "rng": ckpt.capture_rng_state(),
            }
        return payload


def _gather_loader_states(runtime: Runtime, loader: TrainLoader) -> list[dict[str, Any]]:
    """Every rank's sampler position, so each rank resumes where it was."""
    state = loader.state_dict()
    if not runtime.distributed:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(states, state)
    return states
