"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, exit cleanly.

A stop can also be asked for from another thread (`request_stop_from_outside`: a worker
process whose experiment has gone), without a signal."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_outside_stop = threading.Event()
_received: list[int] = []  # the signals that reached the training loop, in order


def request_stop_from_outside() -> None:
    """Ask this process's training to stop after its step, saving, as a first signal would."""
    _outside_stop.set()


def stop_requested_from_outside() -> bool:
    return _outside_stop.is_set()


def first_signal() -> int | None:
    """The first signal that reached the latest training loop of this process (the exit
    status of the command says which: 130 for SIGINT, 143 for SIGTERM), or None."""
    return _received[0] if _received else None


def catch_interrupts(request_stop: Callable[[], bool]) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to `request_stop` (which returns True when a stop had already
    been asked for). A second Ctrl-C aborts at once; a second SIGTERM does not, since schedulers
    and process managers send it to every process of a job, and sending it again must not cost
    the checkpoint being saved. Returns the handlers to restore."""

    _received.clear()

    def handler(signum: int, frame: Any) -> None:
        _received.append(signum)
        if request_stop():
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("already stopping after this step: signal %d changes nothing", signum)
            return
        log.warning("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            previous[signum] = signal.signal(signum, handler)
    return previous


def restore_interrupts(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
