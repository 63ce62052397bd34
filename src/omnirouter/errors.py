"""The errors that describe a user's input, files or circumstances rather than a bug, and the
exit status of each (see "Exit codes" in the README).

    0    success
    1    failure: the input was fine, the work failed (a diverged run, a busy directory, a bug)
    2    bad usage or bad input (a wrong key, a missing file, a damaged checkpoint)
    130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: 128 + the signal's number
"""

from __future__ import annotations

import signal

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class OmnirouterError(Exception):
    """The command line prints these as one-line messages (see `omnirouter.cli`) and exits
    with `exit_code`: bad usage or bad input unless a subclass says otherwise."""

    exit_code = EXIT_USAGE


class WorkFailedError(OmnirouterError):
    """The input was fine but the work could not be done (a run diverged, another process
    holds the directory)."""

    exit_code = EXIT_FAILURE


class InterruptedRunError(OmnirouterError):
    """Stopped by a signal after saving what it could; the message says how to continue."""

    def __init__(self, message: str, signal_number: int = signal.SIGTERM) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)

    def __reduce__(self) -> tuple:  # from a worker process to its parent, signal included
        return type(self), (str(self), self.signal_number)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return exit_code_of_signal(self.signal_number)


class Terminated(BaseException):
    """SIGTERM reached a command, raised as Ctrl-C raises KeyboardInterrupt (`omnirouter.cli`
    installs the handler): a BaseException, so that no `except Exception` swallows it."""


def exit_code_of_signal(signal_number: int) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signal_number)
