"""Worker processes of `train_jobs` > 1 stop when the experiment process dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The parent: one spawned worker (with the experiment's watcher) that waits for SIGTERM as a
# training run does, and notes when it arrives.
PARENT = """
import signal, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing, os

from omnirouter.experiment.train_jobs import exit_if_orphaned, watch_parent

stop = []


def work(directory):
    # As the trainer does: SIGTERM asks for a stop, the run saves and returns.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    open(os.path.join(directory, "ready"), "w").write(str(os.getpid()))
    try:
        while not stop:
            time.sleep(0.05)
        open(os.path.join(directory, "terminated"), "w").write(str(os.getpid()))
    finally:
        exit_if_orphaned()


if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=watch_parent, initargs=(os.getpid(), 0.1)
    ) as pool:
        pool.submit(work, sys.argv[1]).result()
"""


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_is_stopped_by_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        assert wait_for(tmp_path / "ready", 60), "the worker did not start"
        time.sleep(0.3)
        assert not (tmp_path / "terminated").exists()  # a living parent stops nothing
        parent.send_signal(signal.SIGKILL)  # no handler, no chance to stop its workers
        parent.wait(10)
        assert wait_for(tmp_path / "terminated", 10), "the orphaned worker kept running"
        worker = int((tmp_path / "ready").read_text())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.05)
        assert not _alive(worker)
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
