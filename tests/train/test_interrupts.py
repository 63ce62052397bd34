"""A second Ctrl-C aborts; a second SIGTERM (a scheduler signalling every process) does not."""

import os
import signal

import pytest

from omnirouter.train.interrupts import catch_interrupts, restore_interrupts


def test_a_second_sigterm_does_not_abort_but_a_second_ctrl_c_does() -> None:
    requests = []

    def request_stop() -> bool:
        requests.append(True)
        return len(requests) > 1  # a stop had been asked for before

    previous = catch_interrupts(request_stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the first: a stop is asked for
        os.kill(os.getpid(), signal.SIGTERM)  # again: nothing more
        assert len(requests) == 2
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        restore_interrupts(previous)
    assert signal.getsignal(signal.SIGTERM) == previous[signal.SIGTERM]
