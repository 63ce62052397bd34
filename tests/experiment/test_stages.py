"""Which work a re-run redoes: training runs (finished, stopped early, interrupted, to be
continued), the ledger's record of it, and a changed configuration. The trainer is replaced by
a stand-in that writes the checkpoint a real run would, so nothing is trained here."""

from __future__ import annotations

import dataclasses
import json
import pickle
import signal
from pathlib import Path

import pytest

from omnirouter.config import ConfigError, save_config
from omnirouter.evaluate import model_file
from omnirouter.evaluate.normalize import get_normalizer
from omnirouter.evaluate.tables import eval_table_from_scores, save_eval_table
from omnirouter.evaluate.wer import Recognition, score_set
from omnirouter.experiment.config import PlannedRun, load_experiment_config, plan_runs
from omnirouter.experiment.ledger import Ledger
from omnirouter.experiment.pipeline import run_experiment, train_stage
from omnirouter.experiment.stages import eval_pending, eval_table_path
from omnirouter.experiment.training_runs import (
    TrainingInterruptedError,
    check_saved_config,
    differing_keys,
    run_state,
    train_run,
    write_done,
)
from omnirouter.locks import DirectoryBusyError
from omnirouter.train import checkpoint as ckpt
from omnirouter.train import trainer
from omnirouter.train.trainer import TrainResult
from tests.lock_holder import hold_lock

MODELS = (
    "models=[{name: finished}, {name: halfway}, {name: new}, "
    "{name: stopped, overrides: [train.early_stop_patience=2]}]"
)


@pytest.fixture
def runs(tmp_path: Path) -> list[PlannedRun]:
    config = load_experiment_config(
        None, [MODELS, f"exp_root={tmp_path}", "run.train.max_steps=30"]
    )
    return plan_runs(config)


def fake_checkpoint(run: PlannedRun, step: int) -> Path:
    path = model_file.step_checkpoint_path(run.exp_dir, step)
    ckpt.save_checkpoint(path, {"step": step})
    return path


class FakeTrainer:
    """Records each call; "trains" by writing the final checkpoint, or stops early or is
    interrupted when told to."""

    def __init__(self, stop_at: dict[str, int] | None = None, interrupt: bool = False) -> None:
        self.calls: list[tuple[Path, bool]] = []
        self.stop_at = stop_at or {}
        self.interrupt = interrupt

    def __call__(self, config, exp_dir: Path, resume: bool = False) -> TrainResult:
        self.calls.append((Path(exp_dir), resume))
        step = self.stop_at.get(Path(exp_dir).parent.name, config.train.max_steps)
        ckpt.save_checkpoint(model_file.step_checkpoint_path(exp_dir, step), {"step": step})
        save_config(config, Path(exp_dir) / "config.yaml")
        stopped = step < config.train.max_steps and not self.interrupt
        signal_number = signal.SIGINT if self.interrupt else None
        return TrainResult(Path(exp_dir), step, None, stopped, self.interrupt, signal_number)


def test_runs_are_skipped_continued_or_started(
    runs: list[PlannedRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished, halfway, new, stopped = runs
    fake_checkpoint(finished, 30)
    fake_checkpoint(halfway, 10)
    fake = FakeTrainer(stop_at={"stopped": 12})
    monkeypatch.setattr(trainer, "train", fake)
    ledger = Ledger(tmp_path / "stages.json", "trial", "command", [])
    train_stage(runs, ledger, force=False)

    assert fake.calls == [(halfway.exp_dir, True), (new.exp_dir, False), (stopped.exp_dir, False)]
    records = {record.task: record for record in ledger.stage_records("train")}
    assert records["finished/seed0"].last_status == "skipped"
    assert records["halfway/seed0"].note == "continued from step 10"
    assert all(run_state(run).finished for run in runs)
    assert run_state(stopped).note == "stopped early at step 12"
    assert json.loads((stopped.exp_dir / "done.json").read_text())["stopped_early"] is True

    # Nothing is left to do: a second pass trains nothing.
    again = FakeTrainer()
    monkeypatch.setattr(trainer, "train", again)
    train_stage(runs, Ledger(tmp_path / "stages.json", "trial", "command", []), force=False)
    assert again.calls == []
    # Forcing the stage trains every run from scratch.
    forced = FakeTrainer()
    monkeypatch.setattr(trainer, "train", forced)
    train_stage(runs, Ledger(tmp_path / "stages.json", "trial", "command", []), force=True)
    assert forced.calls == [(run.exp_dir, False) for run in runs]


def test_a_stop_not_recorded_in_done_json_is_continued(runs: list[PlannedRun]) -> None:
    run = runs[0]
    fake_checkpoint(run, 12)
    write_done(run.exp_dir, 11, True, None)  # names another checkpoint: a later resume ran
    assert not run_state(run).finished
    write_done(run.exp_dir, 12, False, None)  # interrupted, not stopped
    assert not run_state(run).finished
    write_done(run.exp_dir, 12, True, 40.0)
    assert run_state(run).finished


def test_an_interrupted_run_stops_the_experiment_unrecorded(
    runs: list[PlannedRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "train", FakeTrainer(stop_at={"finished": 7}, interrupt=True))
    ledger = Ledger(tmp_path / "stages.json", "trial", "command", [])
    with pytest.raises(TrainingInterruptedError, match="run the same command again") as caught:
        train_stage(runs, ledger, force=False)
    # Ctrl-C: the experiment exits 130, also when the error comes from a worker process.
    assert caught.value.exit_code == pickle.loads(pickle.dumps(caught.value)).exit_code == 130
    assert ledger.stage_records("train") == []
    assert not (runs[0].exp_dir / "done.json").exists()
    assert run_state(runs[0]).started and not run_state(runs[0]).finished


def test_a_run_directory_another_process_holds_is_neither_cleared_nor_trained(
    runs: list[PlannedRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of `train_jobs` locks its run before clearing it: an `omnirouter train` into
    the same directory (here, a process holding its lock) keeps its files."""
    run = runs[0]
    (run.exp_dir / "metrics.jsonl").parent.mkdir(parents=True)
    (run.exp_dir / "metrics.jsonl").write_text("{}\n")
    fake = FakeTrainer()
    monkeypatch.setattr(trainer, "train", fake)
    holder = hold_lock(run.exp_dir)
    try:
        with pytest.raises(DirectoryBusyError, match=f"pid {holder.pid}"):
            train_run(run, run_state(run))
    finally:
        holder.kill()
        holder.wait()
    assert fake.calls == [] and (run.exp_dir / "metrics.jsonl").is_file()
    train_run(run, run_state(run))  # free again: cleared, then trained
    assert fake.calls == [(run.exp_dir, False)] and not (run.exp_dir / "metrics.jsonl").exists()


def test_an_experiment_whose_root_another_process_holds_is_refused_before_any_write(
    tmp_path: Path,
) -> None:
    config = load_experiment_config(
        None, [MODELS, f"exp_root={tmp_path / 'exp'}", f"report_dir={tmp_path / 'report'}"]
    )
    holder = hold_lock(tmp_path / "exp")
    try:
        with pytest.raises(DirectoryBusyError, match=f"pid {holder.pid}"):
            run_experiment(config)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "report").exists()
    assert [path.name for path in (tmp_path / "exp").iterdir()] == [".lock"]


def test_a_run_trained_with_another_model_is_not_reused(runs: list[PlannedRun]) -> None:
    run = runs[0]
    run.exp_dir.mkdir(parents=True)
    save_config(run.config, run.exp_dir / "config.yaml")
    check_saved_config(run)  # the same configuration
    longer = dataclasses.replace(
        run.config, train=dataclasses.replace(run.config.train, max_steps=90)
    )
    save_config(longer, run.exp_dir / "config.yaml")
    check_saved_config(run)  # more steps: it can be continued
    wider = dataclasses.replace(
        run.config, model=dataclasses.replace(run.config.model, model_dim=1024)
    )
    save_config(wider, run.exp_dir / "config.yaml")
    with pytest.raises(ConfigError, match=r"model\.model_dim"):
        check_saved_config(run)


def test_differing_keys_are_dotted() -> None:
    first = {"model": {"dim": 1, "layers": 2}, "seed": 0}
    second = {"model": {"dim": 1, "layers": 3}, "seed": 1, "extra": True}
    assert differing_keys(first, second) == ["extra", "model.layers", "seed"]


def test_ledger_keeps_the_time_of_the_work(tmp_path: Path) -> None:
    path = tmp_path / "stages.json"
    ledger = Ledger(path, "trial", "first", [])
    with ledger.run("train", "a/seed0", "30 steps"):
        pass
    ledger.finish()
    done = ledger.tasks[("train", "a/seed0")]
    again = Ledger(path, "trial", "second", ["train"])
    again.skip("train", "a/seed0", "finished")
    again.finish()
    document = json.loads(path.read_text())
    assert [entry["command"] for entry in document["invocations"]] == ["first", "second"]
    assert document["invocations"][1]["skipped"] == ["train a/seed0"]
    (task,) = document["tasks"]
    assert task["last_status"] == "skipped"
    assert (task["started"], task["seconds"], task["note"]) == (
        done.started,
        done.seconds,
        "30 steps",
    )
    assert not again.ran_any(("train",))
    assert again.current_records() == [again.tasks[("train", "a/seed0")]]
    third = Ledger(path, "trial", "third", [])  # a configuration without that run
    assert third.current_records() == []


def test_failed_work_is_not_recorded(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "stages.json", "trial", "command", [])
    with pytest.raises(RuntimeError), ledger.run("eval", "a/seed0"):
        raise RuntimeError("broken")
    assert ledger.tasks == {}


def test_an_evaluation_is_pending_until_its_table_covers_the_sets(
    runs: list[PlannedRun],
) -> None:
    run = runs[0]
    fake_checkpoint(run, 30)
    assert eval_pending(run, ["test"]) == "not evaluated"
    score = score_set("test", [Recognition("a", "a b", "a c")], get_normalizer("none"))
    table = eval_table_from_scores(str(run.exp_dir), [score], {"test": "test"})
    files = save_eval_table(table, eval_table_path(run).parent)
    assert eval_pending(run, ["test"]) is None
    assert "not on ['dev', 'test']" in eval_pending(run, ["test", "dev"])
    # A table written before the CER column is not evaluated again (its CER shows as a dash):
    # a report rebuilt where the evaluation device is missing must still work.
    record = json.loads(files.json.read_text())
    for row in record["rows"]:
        del row["reference_chars"], row["char_errors"], row["cer_percent"]
    files.json.write_text(json.dumps(record))
    assert eval_pending(run, ["test"]) is None


def test_wall_time_counts_tasks_that_ran_side_by_side_once() -> None:
    from omnirouter.experiment.ledger import TaskRecord
    from omnirouter.experiment.report_setup import wall_seconds

    def task(name: str, started: str, ended: str, seconds: float) -> TaskRecord:
        day = "2026-01-01T10:"
        return TaskRecord("train", name, day + started, day + ended, seconds, "ran")

    one_after_another = [task("a", "00:00", "01:40", 100.0), task("b", "01:40", "03:00", 80.0)]
    assert wall_seconds(one_after_another) == 180.0
    # a and b side by side (10:00:00-10:02:00 and 10:00:30-10:03:00), then c on its own; a
    # task found done before any recorded invocation counts its seconds.
    side_by_side = [
        task("a", "00:00", "02:00", 120.0),
        task("b", "00:30", "03:00", 150.0),
        task("c", "03:00", "03:10", 10.0),
        TaskRecord("train", "old", "", "", 0.0, "skipped"),
    ]
    assert wall_seconds(side_by_side) == 180.0 + 10.0
