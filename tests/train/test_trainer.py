"""The training loop on a tiny corpus: learning, robustness, exact resume after SIGKILL, DDP."""

import contextlib
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from omnirouter.config import save_config
from omnirouter.data.loader import build_train_loader
from omnirouter.evaluate import model_file
from omnirouter.train import checkpoint as ckpt
from omnirouter.train import step as step_module
from omnirouter.train import trainer as trainer_module
from omnirouter.train.distributed import Runtime
from omnirouter.train.metrics import read_metrics
from omnirouter.train.trainer import TrainingError, train

from .conftest import tiny_run_config

SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def final_weights(exp_dir: Path) -> dict[str, torch.Tensor]:
    return model_file.load_checkpoint(model_file.step_checkpoints(exp_dir)[-1])["model"]


def test_loss_falls_and_run_files_are_written(tiny_corpus: Path, tmp_path: Path) -> None:
    config = tiny_run_config(tiny_corpus, max_steps=40, valid_every=20, checkpoint_every=20)
    result = train(config, tmp_path / "exp")
    records = read_metrics(tmp_path / "exp").train
    assert [r.step for r in records] == list(range(1, 41))
    first = sum(r.ctc_loss for r in records[:5]) / 5
    last = sum(r.ctc_loss for r in records[-5:]) / 5
    # Deterministic (seeded, CPU): a model that learnt nothing would stay near its first value.
    assert last < 0.85 * first, (first, last)
    for record in records:
        assert len(record.expert_load) == 2  # two MoE layers
        assert sum(record.expert_load[0]) == pytest.approx(1.0)
        assert record.audio_seconds_per_second > 0
    validations = read_metrics(tmp_path / "exp").valid
    assert [record.step for record in validations] == [20, 40]
    for record in validations:
        assert 0 <= record.dev_cer <= 100 and 0 <= record.dev_wer <= 100
    per_token = [record.ctc_loss_per_token for record in records]
    # Utterances of the tiny corpus hold ~20-60 tokens: per token is a fraction of the mean.
    for record, loss in zip(records, per_token, strict=True):
        assert 0 < loss < record.ctc_loss / 10, record
    for validation in validations:
        # The dev loss is counted alike: of the order of the training loss at that step
        # (records[i] is step i + 1: tiny_run_config logs every step).
        at_step = per_token[validation.step - 1]
        assert 0.25 * at_step < validation.dev_ctc_loss_per_token < 4 * at_step, validation
    exp = tmp_path / "exp"
    assert (exp / "config.yaml").is_file() and (exp / "train.log").is_file()
    assert (exp / "tokenizer" / "tokenizer.model").is_file()
    assert (exp / "checkpoints" / "best.pt").is_file()
    assert list((exp / "tensorboard").iterdir())
    assert result.step == 40 and result.best_dev_wer is not None


def test_existing_experiment_needs_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    config = tiny_run_config(tiny_corpus, max_steps=2, checkpoint_every=1)
    train(config, tmp_path / "exp")
    with pytest.raises(TrainingError, match="--resume"):
        train(config, tmp_path / "exp")


def test_resuming_with_another_model_names_the_fields_that_differ(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    train(tiny_run_config(tiny_corpus, max_steps=1), tmp_path / "exp")
    wider = tiny_run_config(tiny_corpus, {"ffn_dim": 128, "num_experts": 4}, max_steps=2)
    with pytest.raises(TrainingError) as error:
        train(wider, tmp_path / "exp", resume=True)
    assert "differs from this run's in model.ffn_dim, model.num_experts:" in str(error.value)


def test_a_truncated_latest_checkpoint_is_passed_over_for_the_one_before(
    tiny_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_run_config(tiny_corpus, max_steps=4, checkpoint_every=2, keep_last=0)
    train(config, tmp_path / "exp")
    latest = model_file.step_checkpoint_path(tmp_path / "exp", 4)
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a copy cut short
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=6))
    result = train(longer, tmp_path / "exp", resume=True)
    assert result.step == 6
    assert "step-00000004.pt is truncated or corrupt" in caplog.text
    assert "resumed from step 2" in caplog.text
    # Steps 3 and 4 were trained again: their metrics replaced, not duplicated.
    assert [record.step for record in read_metrics(tmp_path / "exp").train] == list(range(1, 7))


def test_non_finite_loss_is_skipped_and_counted(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_total_loss = step_module.total_loss
    calls = {"count": 0}

    def sometimes_nan(*args, **kwargs):
        terms = real_total_loss(*args, **kwargs)
        calls["count"] += 1
        if calls["count"] in (3, 4):
            return dataclasses.replace(terms, total=terms.total * float("nan"))
        return terms

    monkeypatch.setattr(step_module, "total_loss", sometimes_nan)
    train(tiny_run_config(tiny_corpus, max_steps=6, checkpoint_every=6), tmp_path / "exp")
    records = read_metrics(tmp_path / "exp").train
    assert records[-1].skipped_nonfinite == 2
    weights = final_weights(tmp_path / "exp")
    assert all(torch.isfinite(value).all() for value in weights.values())

    def always_inf(*args, **kwargs):
        terms = real_total_loss(*args, **kwargs)
        return dataclasses.replace(terms, total=terms.total * float("inf"))

    monkeypatch.setattr(step_module, "total_loss", always_inf)
    config = tiny_run_config(tiny_corpus, max_steps=10, max_consecutive_nonfinite=3)
    with pytest.raises(TrainingError, match="3 non-finite steps in a row"):
        train(config, tmp_path / "exp_all_nan")


def wait_until(process: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready` while `process` runs; fail when the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def logged_steps(exp_dir: Path) -> int:
    """Records in metrics.jsonl so far: one per step at log_every = 1 with validation off."""
    metrics = exp_dir / "metrics.jsonl"
    return metrics.read_text().count("\n") if metrics.exists() else 0


def run_cli(config_path: Path, exp_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnirouter",
            "train",
            str(config_path),
            "--exp-dir",
            str(exp_dir),
            *extra,
        ],
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_and_resume_equals_an_uninterrupted_run(tiny_corpus: Path, tmp_path: Path) -> None:
    steps = 8  # N: checkpoint at N, kill, resume to 2N
    config = tiny_run_config(
        tiny_corpus, max_steps=2 * steps, checkpoint_every=steps, valid_every=steps, keep_last=5
    )
    config_path = tmp_path / "run.yaml"
    save_config(config, config_path)

    straight = run_cli(config_path, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0, straight.stderr.read()

    killed = run_cli(config_path, tmp_path / "killed")
    first_checkpoint = model_file.step_checkpoint_path(tmp_path / "killed", steps)
    wait_until(killed, first_checkpoint.exists, timeout=600)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not model_file.step_checkpoint_path(tmp_path / "killed", 2 * steps).exists(), (
        "the run finished before it was killed: the test proves nothing"
    )

    resumed = run_cli(config_path, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    expected, actual = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    # The metrics of the repeated steps were replaced, not duplicated.
    assert [r.step for r in read_metrics(tmp_path / "killed").train] == list(
        range(1, 2 * steps + 1)
    )


class InterleavedRanks:
    """What two DDP ranks see, seen by one process: rank 0's batch, then rank 1's, forever.

    With grad_accumulation=2, one process then averages the same two batches per step that
    two DDP ranks average with grad_accumulation=1. (Lhotse deals batches to ranks by its own
    rules, so a single-process sampler would not reproduce them.)"""

    def __init__(self, config, tokenizer, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.ranks = [
            build_train_loader(config, tokenizer, seed=seed, rank=r, world_size=2) for r in (0, 1)
        ]
        self.epoch, self.skipped = 0, {}

    def __iter__(self):
        streams = [self._forever(loader) for loader in self.ranks]
        while True:
            for stream in streams:
                yield next(stream)

    @staticmethod
    def _forever(loader):
        while True:
            yield from loader

    def state_dict(self):
        return {}


@pytest.mark.slow
def test_two_process_ddp_follows_the_single_process_trajectory(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = 6
    # No dropout: the two ranks and the single process would draw different masks.
    no_dropout = {"model": {"dropout": 0.0}}
    double = tiny_run_config(tiny_corpus, max_steps=steps, grad_accumulation=1, **no_dropout)
    save_config(double, tmp_path / "double.yaml")
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "omnirouter",
            "train",
            str(tmp_path / "double.yaml"),
            "--exp-dir",
            str(tmp_path / "two"),
        ],
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]

    monkeypatch.setattr(trainer_module, "build_train_loader", InterleavedRanks)
    single = tiny_run_config(tiny_corpus, max_steps=steps, grad_accumulation=2, **no_dropout)
    train(single, tmp_path / "one")

    losses_one = [r.ctc_loss for r in read_metrics(tmp_path / "one").train]
    losses_two = [r.ctc_loss for r in read_metrics(tmp_path / "two").train]
    assert len(losses_one) == len(losses_two) == steps
    # Same batches and weights: only the order of floating-point sums differs (gradients are
    # averaged by an all-reduce instead of by accumulation), so the tolerance is tight.
    for a, b in zip(losses_one, losses_two):
        assert math.isclose(a, b, rel_tol=1e-4), (losses_one, losses_two)
    weights_one, weights_two = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for key in weights_one:
        # Adam divides by sqrt(v): near-zero gradients turn rounding into ~1e-4 weight changes.
        torch.testing.assert_close(weights_one[key], weights_two[key], rtol=0, atol=1e-3)


def torchrun_worker_of_rank(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the torchrun worker process with RANK=`rank` (read from its environment)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_signal_to_one_ddp_rank_stops_every_rank_after_the_same_step(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """SIGTERM reaches rank 1 only: both ranks stop together and the run saves and exits
    cleanly (rank 0 alone going on would wait in the next all-reduce forever)."""
    config = tiny_run_config(tiny_corpus, max_steps=100_000, checkpoint_every=100_000)
    save_config(config, tmp_path / "run.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    command += ["2", "-m", "omnirouter", "train", str(tmp_path / "run.yaml")]
    launcher = subprocess.Popen(
        [*command, "--exp-dir", str(tmp_path / "exp")],
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group: a failed test kills the workers too
    )
    try:
        wait_until(launcher, lambda: logged_steps(tmp_path / "exp") >= 2, timeout=300)
        os.kill(torchrun_worker_of_rank(launcher, 1), signal.SIGTERM)
        # Every worker exits 143 (rank 0 stopped for rank 1's SIGTERM), which torchrun
        # reports as a failure: the job did not finish.
        assert launcher.wait(timeout=120) != 0
        errors = launcher.stderr.read()
        assert errors.count("--resume") >= 2 and "exitcode" in errors, errors[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
    saved = model_file.step_checkpoints(tmp_path / "exp")
    assert len(saved) == 1
    payload = model_file.load_checkpoint(saved[0])
    assert 2 <= payload["step"] < 100_000
    assert len(payload["loader"]) == 2  # both ranks' data positions, from the same step


def test_a_stop_agreed_from_another_rank_leaves_this_ranks_first_signal_a_first(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 was signalled, so rank 0 stops too; then rank 0's own first SIGTERM arrives
    (torchrun passing it on): it must not abort like a second Ctrl-C, which would leave the
    other ranks waiting in the collective final save."""
    runtime = Runtime(torch.device("cpu"), rank=0, world_size=2, autocast_dtype=None)
    trainer = trainer_module._Trainer(tiny_run_config(tiny_corpus), tmp_path, runtime)
    monkeypatch.setattr(trainer_module, "any_rank", lambda runtime, flag: True)  # rank 1's stop
    assert trainer._stop_requested() and trainer.interrupted
    assert trainer.request_stop() is False  # this rank's first signal
    assert trainer.request_stop() is True  # its second one aborts


def test_early_stop_when_dev_wer_plateaus(tiny_corpus: Path, tmp_path: Path) -> None:
    # An improvement must beat the best by 100 WER points: only the first validation counts.
    config = tiny_run_config(
        tiny_corpus, max_steps=50, valid_every=1, early_stop_patience=2, early_stop_min_delta=100.0
    )
    result = train(config, tmp_path / "exp")
    assert result.stopped_early and result.step == 3
    validations = read_metrics(tmp_path / "exp").valid
    assert [record.step for record in validations] == [1, 2, 3]
    assert model_file.step_checkpoints(tmp_path / "exp")[-1].name == "step-00000003.pt"


@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_its_number(
    tiny_corpus: Path, tmp_path: Path, signal_number: int, code: int
) -> None:
    config = tiny_run_config(tiny_corpus, max_steps=100_000, checkpoint_every=100_000)
    save_config(config, tmp_path / "run.yaml")
    process = run_cli(tmp_path / "run.yaml", tmp_path / "exp")
    wait_until(process, lambda: logged_steps(tmp_path / "exp") >= 2, timeout=300)
    process.send_signal(signal_number)
    assert process.wait(timeout=120) == code, process.stderr.read()
    resume = f"omnirouter train {tmp_path / 'run.yaml'} --exp-dir {tmp_path / 'exp'} --resume"
    assert f"continue with: {resume}" in process.stderr.read()
    saved = model_file.step_checkpoints(tmp_path / "exp")
    assert len(saved) == 1
    step = model_file.load_checkpoint(saved[0])["step"]
    assert 2 <= step < 100_000


def test_an_interrupt_on_a_checkpoint_step_saves_it_once(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during step 2 (a checkpoint step): the run stops after it, with one save."""
    real_step = trainer_module.train_step
    calls = []

    def interrupted_second_step(*args, **kwargs):
        calls.append(len(calls) + 1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    saved = []
    real_save = ckpt.save_checkpoint
    monkeypatch.setattr(trainer_module, "train_step", interrupted_second_step)
    monkeypatch.setattr(
        ckpt,
        "save_checkpoint",
        lambda path, payload: (saved.append(path.name), real_save(path, payload)),
    )
    result = train(tiny_run_config(tiny_corpus, max_steps=10, checkpoint_every=2), tmp_path / "exp")
    assert result.interrupted and result.step == 2
    assert saved == ["step-00000002.pt"]
