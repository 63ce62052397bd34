"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, exit cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def catch_interrupts(request_stop: Callable[[], bool]) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to `request_stop` (which returns True when a stop had already
    been asked for: a second Ctrl-C aborts at once). Returns the handlers to restore."""

    def handler(signum: int, frame: Any) -> None:
        if request_stop():
            raise KeyboardInterrupt
        log.warning("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            previous[signum] = signal.signal(signum, handler)
    return previous


def restore_interrupts(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
