"""Units of work for the build's worker processes, and the pool that runs them.

This module imports only what workers need (no Lhotse, no torch), so spawned workers start fast.
Workers are spawned rather than forked: the parent may hold threads (onnxruntime, torch) that a
fork would copy in an undefined state.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from omnirouter.data.synth.conditions import ConditionSettings, apply_condition
from omnirouter.data.synth.config import Engine
from omnirouter.data.synth.effects import EffectSettings, apply_effect
from omnirouter.data.synth.engines import SynthesisJob, engine_for
from omnirouter.data.synth.pauses import store_with_pauses
from omnirouter.data.synth.sox import store_wav

PARENT_CHECK_SECONDS = 1.0  # how often a worker checks that the build's process still runs
# Rough CPU seconds per second of audio, to start the slowest work first (measured on one core).
ENGINE_COST = {Engine.piper: 0.12, Engine.festival: 0.03, Engine.flite: 0.02, Engine.espeak: 0.005}


@dataclass(frozen=True)
class SynthesisTask:
    engine: Engine
    jobs: tuple[SynthesisJob, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def cost(self) -> float:
        return ENGINE_COST[self.engine] * sum(
            len(job.text.split()) / job.speed for job in self.jobs
        )

    def run(self) -> int:
        """Speak every job; those with pauses or speed perturbation are spoken to a scratch file
        first, so that their final file appears (atomically) only once it holds them."""
        with tempfile.TemporaryDirectory(prefix="spoken-") as scratch:
            spoken = tuple(
                replace(job, path=Path(scratch) / f"{index}.wav") if _is_changed(job) else job
                for index, job in enumerate(self.jobs)
            )
            engine_for(self.engine).synthesize(spoken, self.sample_rate)
            for job, raw in zip(self.jobs, spoken):
                if _is_changed(job):
                    _finish(raw.path, job, self.sample_rate)
        return len(self.jobs)


def _is_changed(job: SynthesisJob) -> bool:
    return job.pauses is not None or (job.style is not None and job.style.changes_audio)


def _finish(raw: Path, job: SynthesisJob, sample_rate: int) -> None:
    """Store the engine's audio `raw` as `job.path`: in its style (sox speed perturbation and
    timbre shift, resampled back to the corpus rate), then with the job's pauses."""
    if job.style is not None and job.style.changes_audio:
        styled = raw.with_name(f"{raw.stem}.styled.wav")
        target = styled if job.pauses is not None else job.path
        # The rate effect resamples before `norm`.
        effects = [*job.style.sox_effects(), "rate", str(sample_rate)]
        store_wav(raw, target, sample_rate, effects=effects, context="voice style")
        raw = styled
    if job.pauses is not None:
        store_with_pauses(raw, job.path, job.pauses, sample_rate)


@dataclass(frozen=True)
class EffectJob:
    """A test set's acoustic effect on one stored recording."""

    settings: EffectSettings
    source: Path
    path: Path

    def run(self, sample_rate: int) -> None:
        apply_effect(self.settings, self.source, self.path, sample_rate)


@dataclass(frozen=True)
class ConditionJob:
    """A training condition on one utterance's clean spoken audio."""

    settings: ConditionSettings
    source: Path  # the clean spoken audio
    path: Path
    babble_sources: tuple[Path, ...] = ()

    def run(self, sample_rate: int) -> None:
        apply_condition(self.settings, self.source, self.path, sample_rate, self.babble_sources)


@dataclass(frozen=True)
class AudioEditTask:
    """Effects or conditions applied to stored recordings, one job after another."""

    jobs: tuple[EffectJob | ConditionJob, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.jobs)

    @property
    def cost(self) -> float:
        return float(len(self.jobs))

    def run(self) -> int:
        for job in self.jobs:
            job.run(self.sample_rate)
        return len(self.jobs)


Task = SynthesisTask | AudioEditTask


def run_tasks(tasks: Sequence[Task], jobs: int, description: str) -> int:
    """Run `tasks` on `jobs` processes (in this one if `jobs == 1`), costliest first, with a
    progress bar over utterances. Returns the number of utterances written."""
    if not tasks:
        return 0
    ordered = sorted(tasks, key=lambda task: task.cost, reverse=True)
    done = 0
    with tqdm(total=sum(map(len, tasks)), desc=description, unit="utt", dynamic_ncols=True) as bar:
        if jobs == 1 or len(tasks) == 1:
            for task in ordered:
                done += task.run()
                bar.update(len(task))
            return done
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(tasks)),
            mp_context=context,
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = [pool.submit(_run, task) for task in ordered]
            for future in as_completed(futures):
                count = future.result()
                done += count
                bar.update(count)
        finally:
            # On an error or Ctrl-C, drop the queued tasks instead of finishing them.
            pool.shutdown(wait=True, cancel_futures=True)
    return done


def _run(task: Task) -> int:
    return task.run()


def exit_with_parent(parent_pid: int) -> None:
    """A worker's initializer: end the worker once the process that started it is gone (killed
    with SIGKILL, say, which leaves it no chance to shut its pool down), rather than leave it
    waiting for work that never comes."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
