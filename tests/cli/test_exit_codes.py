"""Every command exits alike: 0 success, 1 failure, 2 bad usage or input, 130 after SIGINT,
143 after SIGTERM (`omnirouter.cli.main`)."""

import os
import signal
import time
from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.errors import WorkFailedError
from omnirouter.train import checkpoint as ckpt


def test_bad_input_exits_2_with_a_hint_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["average", str(tmp_path)]) == 2  # no checkpoint to average
    error = capsys.readouterr().err
    assert "omnirouter average: error: no checkpoints to average" in error
    assert "(run omnirouter -v average ... for the traceback)" in error


def test_average_of_zero_checkpoints_is_refused_as_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["average", str(tmp_path), "-n", "0"])
    assert exit_.value.code == 2


def test_a_failure_that_is_not_bad_input_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(paths):
        raise WorkFailedError("the work failed")

    monkeypatch.setattr(ckpt, "average_checkpoints", fail)
    assert main(["average", str(tmp_path)]) == 1


@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_exits_128_plus_its_number(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    signal_number: int,
    code: int,
) -> None:
    def signalled(paths):
        os.kill(os.getpid(), signal_number)
        time.sleep(10)  # the signal arrives first

    monkeypatch.setattr(ckpt, "average_checkpoints", signalled)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["average", str(tmp_path)]) == code
    assert f"stopped by {signal.Signals(signal_number).name}" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # the CLI's handler is gone again
