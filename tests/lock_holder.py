"""Another process holding a directory's lock, for the tests of `omnirouter.locks`."""

import subprocess
import sys
from pathlib import Path

HOLDER = """
import sys, time
from omnirouter.locks import directory_lock

with directory_lock(sys.argv[1], "a test's holder"):
    print("locked", flush=True)
    time.sleep(600)
"""


def hold_lock(directory: Path) -> subprocess.Popen:
    """A process that holds `directory`'s lock until it is killed (returns once it holds it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder
