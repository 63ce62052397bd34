"""One process at a time in a directory: an exclusive lock on DIR/.lock, taken before anything
is written there (a training run's directory, an experiment's root).

The lock is a POSIX record lock (`fcntl.lockf`), which the kernel drops when its process ends,
however it ends: a lock left by a killed process is free for the next one, whose log names the
process it took over from. A record lock rather than `flock`, because a flock is shared with
every process forked while it is held (the data loader's workers), and such a worker could keep
it after its parent was killed. The file holds its holder's pid, host, start time and purpose as
JSON, for the message of a process refused; it is emptied on release, and left in place (a file
removed while others wait on it would let two processes lock two different files).

Within one process the lock is re-entrant: an experiment training in its own process takes the
lock of a run directory it may already hold. Where the file system has no locks, the file's pid
decides: a holder still alive on this host (or on another host: it cannot be asked) keeps it.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from omnirouter.errors import WorkFailedError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started: str  # ISO time, UTC
    purpose: str  # e.g. "omnirouter train"

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid} on {self.host}, started {self.started})"

    def alive(self) -> bool:
        """Whether the holder still runs; a process on another host is taken to."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True


class DirectoryBusyError(WorkFailedError):
    """Another process holds the directory's lock."""

    def __init__(self, directory: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another process"
        super().__init__(
            f"{directory} is in use by {who}: wait for it to end, or choose another directory"
        )
        self.holder = holder


# The locks this process holds: lock file -> [descriptor, nesting depth].
_held: dict[Path, list[int]] = {}


@contextmanager
def directory_lock(directory: str | Path, purpose: str) -> Iterator[None]:
    """Hold `directory`'s lock inside the block (creating the directory), or raise
    `DirectoryBusyError` naming the process that holds it."""
    path = Path(directory).resolve() / LOCK_FILE
    if path in _held:
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _acquire(path, purpose)
    _held[path] = [descriptor, 1]
    try:
        yield
    finally:
        del _held[path]
        os.ftruncate(descriptor, 0)
        os.close(descriptor)  # releases the lock


def _acquire(path: Path, purpose: str) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise DirectoryBusyError(path.parent, _read(descriptor)) from None
            if error.errno not in _NO_LOCKS:
                raise
            holder = _read(descriptor)
            if holder is not None and holder.alive():
                raise DirectoryBusyError(path.parent, holder) from None
            log.warning("%s: the file system has no locks; its pid file decides", path)
        previous = _read(descriptor)
        if previous is not None:
            log.warning(
                "%s: taking over the lock of %s, which ended without releasing it",
                path.parent,
                previous.describe(),
            )
        holder = LockHolder(os.getpid(), socket.gethostname(), _now(), purpose)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(asdict(holder)).encode() + b"\n", 0)
        return descriptor
    except BaseException:
        os.close(descriptor)
        raise


def _read(descriptor: int) -> LockHolder | None:
    # Through the held descriptor: closing any other descriptor of the file would drop a
    # POSIX lock this process holds on it.
    return _parse_holder(os.pread(descriptor, 4096, 0))


def _parse_holder(text: bytes) -> LockHolder | None:
    try:
        return LockHolder(**json.loads(text)) if text.strip() else None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
