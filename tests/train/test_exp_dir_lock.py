"""Two trainings into one experiment directory: the second is refused, naming the first, before
it writes anything; so is a --resume of a run that is still training."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from omnirouter.config import save_config
from omnirouter.errors import EXIT_FAILURE

from .conftest import tiny_run_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def omnirouter_train(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "omnirouter", "train", *arguments]


def test_a_second_training_into_a_running_experiment_is_refused(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    config = tiny_run_config(tiny_corpus, max_steps=100_000, checkpoint_every=100_000)
    save_config(config, tmp_path / "run.yaml")
    exp_dir = tmp_path / "exp"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(
            omnirouter_train(str(tmp_path / "run.yaml"), "--exp-dir", str(exp_dir)),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        metrics = exp_dir / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.is_file() and metrics.read_text()):  # it trains
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        holder = f"in use by omnirouter train (pid {first.pid} on {socket.gethostname()}, started"
        for extra in (["model.family=switch"], ["--resume"]):
            second = subprocess.run(
                omnirouter_train(str(tmp_path / "run.yaml"), *extra, "--exp-dir", str(exp_dir)),
                env=ENV,
                capture_output=True,
                text=True,
                timeout=120,  # a refusal takes seconds; a second training would go on
            )
            assert second.returncode == EXIT_FAILURE, second.stderr
            assert holder in second.stderr, second.stderr
        # The second run wrote nothing: the saved config is still the first run's.
        assert "family: omni" in (exp_dir / "config.yaml").read_text()
        assert first.poll() is None  # and the first one goes on
    finally:
        first.kill()
        first.wait()
