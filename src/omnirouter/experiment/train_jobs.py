"""Several training runs at once, each in a process of its own (`train_jobs` > 1).

On a CPU a small model keeps one core busy far better than two threads share one model, so
an experiment of three small models trains them side by side. Each worker process trains one
run through `runs.train_run` (so resumption, done.json and interruption behave as in the
sequential stage), logs to its run's train.log and to the console with the run's label, and
has no progress bar (several bars would overwrite each other). A run that fails or is
interrupted raises its error in the parent once the other runs have finished or stopped.
A worker whose parent dies (killed, say, where it could not pass a signal on) stops its run
after the current step, saving a checkpoint, and exits; an idle worker exits at once. Left
running, it would go on writing into a run that the next `omnirouter experiment` resumes at
the same time. (A worker killed before its run's training loop starts, while it sets up, saves
nothing, and has nothing to save.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait

import torch

from omnirouter.experiment.config import PlannedRun
from omnirouter.experiment.ledger import now
from omnirouter.experiment.training_runs import RunState, train_run
from omnirouter.train.interrupts import request_stop_from_outside

log = logging.getLogger(__name__)

# (run, its state before training, the note for stages.json)
PendingRun = tuple[PlannedRun, RunState, str]
# Called in the parent as each run finishes: (run, note, started ISO time, wall seconds).
OnFinished = Callable[[PlannedRun, str, str, float], None]


def train_in_processes(
    pending: Sequence[PendingRun], jobs: int, cpu_threads: int, on_finished: OnFinished
) -> None:
    """Train `pending` runs, at most `jobs` at a time, each with `cpu_threads` torch threads
    (0 = one). Raises the first failure after every started run has ended."""
    # spawn, not fork: a forked child would inherit the parent's torch thread pool and locks.
    context = multiprocessing.get_context("spawn")
    failures: list[BaseException] = []
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=watch_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures: dict[Future, tuple[PlannedRun, str]] = {}
        for run, state, note in pending:
            log.info("train %s: queued for a worker process (%s)", run.label, note)
            futures[pool.submit(_train_worker, run, state, cpu_threads or 1)] = (run, note)
        remaining = set(futures)
        try:
            while remaining:
                done, remaining = wait(remaining, return_when="FIRST_COMPLETED")
                for future in done:
                    run, note = futures[future]
                    error = future.exception()
                    if error is not None:
                        log.error("train %s failed: %s", run.label, error)
                        failures.append(error)
                        continue
                    started, seconds = future.result()
                    on_finished(run, note, started, seconds)
        except BaseException:  # Ctrl-C or SIGTERM reached this process
            stop_workers(pool)
            raise
    if failures:
        raise failures[0]


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Start no queued run, and ask the running ones to stop after their step, saving (a
    worker that was signalled too, as Ctrl-C signals them all, is not asked twice: a second
    SIGTERM changes nothing). Leaving the pool's block then waits for them."""
    pool.shutdown(wait=False, cancel_futures=True)
    # The pool keeps its worker processes in a private attribute; there is no public one.
    for pid in list(getattr(pool, "_processes", None) or {}):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


_parent_pid: int | None = None  # in a worker: the experiment process that started it
_worker_pid: int | None = None  # ... and the worker itself (not a process forked from it)
_running = threading.Event()  # a run is being trained in this worker


def watch_parent(parent_pid: int, interval_seconds: float = 1.0) -> threading.Thread:
    """The workers' initializer: once `parent_pid` is no longer this process's parent (it died
    and the worker was re-parented), ask the run being trained to stop after its step, or end
    an idle worker, which the pool would otherwise keep waiting for work forever."""
    global _parent_pid, _worker_pid
    _parent_pid, _worker_pid = parent_pid, os.getpid()

    def watch() -> None:
        while not orphaned():
            time.sleep(interval_seconds)
        if not _running.is_set():
            _exit()
        log.warning("the experiment process %d has gone: stopping this run", parent_pid)
        request_stop_from_outside()

    watcher = threading.Thread(target=watch, name="watch-parent", daemon=True)
    watcher.start()
    return watcher


def orphaned() -> bool:
    return _parent_pid is not None and os.getpid() == _worker_pid and os.getppid() != _parent_pid


@contextlib.contextmanager
def active_run() -> Iterator[None]:
    """Around a run in a worker: when it ends and the parent has gone, end the process
    (nobody will collect its result, and the pool's queue, whose ends the worker holds
    itself, would block it forever)."""
    _running.set()
    try:
        yield
    finally:
        _running.clear()
        if orphaned():
            _exit()


def _exit() -> None:
    logging.shutdown()
    os._exit(1)


def _train_worker(run: PlannedRun, state: RunState, threads: int) -> tuple[str, float]:

    # force: a worker process trains several runs in turn, each logged with its own label.
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [{run.label}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    torch.set_num_threads(threads)
    quiet = dataclasses.replace(run.config.train, progress=False)
    run = dataclasses.replace(run, config=dataclasses.replace(run.config, train=quiet))
    started, clock = now(), time.perf_counter()
    with active_run():
        train_run(run, state)
    return started, time.perf_counter() - clock
