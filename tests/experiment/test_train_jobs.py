"""Worker processes of `train_jobs` > 1 stop when the experiment process dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The parent: a pool of one spawned worker (with the experiment's watcher). "busy" gives it a
# run that goes on, as training does, until a stop is asked for; "idle" a task that returns,
# leaving the worker waiting for more.
PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

from omnirouter.experiment.train_jobs import active_run, watch_parent
from omnirouter.train.interrupts import stop_requested_from_outside


def run(directory):
    open(os.path.join(directory, "ready"), "w").write(str(os.getpid()))
    with active_run():
        while not stop_requested_from_outside():
            time.sleep(0.05)
        open(os.path.join(directory, "stopped"), "w").write("saved")


def idle(directory):
    open(os.path.join(directory, "ready"), "w").write(str(os.getpid()))


if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    task = run if sys.argv[2] == "busy" else idle
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=watch_parent, initargs=(os.getpid(), 0.1)
    ) as pool:
        pool.submit(task, sys.argv[1]).result()
        time.sleep(120)
"""


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("task", ["busy", "idle"])
def test_a_worker_stops_and_exits_when_its_parent_is_killed(tmp_path: Path, task: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path), task])
    try:
        assert wait_for(tmp_path / "ready", 60), "the worker did not start"
        time.sleep(0.5)
        assert not (tmp_path / "stopped").exists()  # a living parent stops nothing
        parent.send_signal(signal.SIGKILL)  # no handler, no chance to stop its workers
        parent.wait(10)
        if task == "busy":  # the run was asked to stop, and finished as after a step
            assert wait_for(tmp_path / "stopped", 10), "the orphaned run kept going"
        worker = int((tmp_path / "ready").read_text())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.05)
        assert not _alive(worker), "the orphaned worker did not exit"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(") ")[-1].startswith("Z"))
