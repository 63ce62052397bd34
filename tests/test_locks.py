"""A directory's lock: refused while another process holds it, naming that process; free
again once that process is killed; re-entrant within one process."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from omnirouter.errors import EXIT_FAILURE
from omnirouter.locks import LOCK_FILE, DirectoryBusyError, directory_lock
from tests.lock_holder import hold_lock


def test_a_held_directory_is_refused_naming_its_holder(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path / "run")
    try:
        with (
            pytest.raises(DirectoryBusyError) as refused,
            directory_lock(tmp_path / "run", "a second process"),
        ):
            pass
        message = str(refused.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message
        assert "a test's holder" in message and "started 20" in message
        assert refused.value.exit_code == EXIT_FAILURE
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = hold_lock(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)  # no chance to release it
    holder.wait()
    left = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
    assert left["pid"] == holder.pid
    with caplog.at_level(logging.WARNING), directory_lock(tmp_path / "run", "the next one"):
        assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"pid {holder.pid}" in caplog.text and "without releasing it" in caplog.text
    assert (tmp_path / "run" / LOCK_FILE).read_text() == ""  # released: emptied


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with directory_lock(tmp_path, "outer"):
        with directory_lock(tmp_path, "inner"):
            pass
        assert refused_to_another_process(tmp_path)  # still held after the inner block
    assert not refused_to_another_process(tmp_path)


def refused_to_another_process(directory: Path) -> bool:
    """Whether another process is refused `directory`'s lock."""
    script = (
        "import sys\nfrom omnirouter.locks import DirectoryBusyError, directory_lock\n"
        "try:\n    with directory_lock(sys.argv[1], 'probe'): pass\n"
        "except DirectoryBusyError: sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", script, str(directory)]).returncode == 1
