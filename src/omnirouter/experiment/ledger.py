"""`stages.json`: when each piece of an experiment's work was done and how long it took.

A piece of work is a task of a stage: the corpus, a tokenizer, the training of one model with
one seed, ... A task that a later invocation finds finished keeps the times of the invocation
that did it, so the report always quotes the real cost of every result; `last_status` says
whether the latest invocation ran it or found it done.

    {"experiment": NAME,
     "invocations": [{"started", "ended", "command", "forced", "ran", "skipped"}, ...],
     "tasks": [{"stage", "task", "started", "ended", "seconds", "last_status", "note"}, ...]}
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

# An experiment's stages, in the order they run.
STAGES = (
    "corpus",
    "tokenizer",
    "train",
    "eval",
    "lm",
    "analysis",
    "proposals",
    "compare",
    "report",
)
STAGES_FILE = "stages.json"
RAN = "ran"
SKIPPED = "skipped"


@dataclass(frozen=True)
class TaskRecord:
    stage: str
    task: str  # e.g. "dense/seed0"; the stage's name for a stage with one task
    started: str  # ISO time (UTC) at which the work began
    ended: str
    seconds: float  # wall time of the work
    last_status: str  # RAN or SKIPPED, in the latest invocation
    note: str = ""  # what was done or found, e.g. "resumed from step 20"


@dataclass
class Invocation:
    started: str
    command: str
    forced: list[str]
    ended: str = ""
    ran: list[str] = field(default_factory=list)  # "stage task" of every task run
    skipped: list[str] = field(default_factory=list)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The record of one experiment's tasks, saved to `path` after every change."""

    def __init__(self, path: Path, experiment: str, command: str, forced: list[str]) -> None:
        self.path = path
        self.experiment = experiment
        self.tasks: dict[tuple[str, str], TaskRecord] = {}
        self.invocations: list[Invocation] = []
        if path.is_file():
            self._load()
        self.current = Invocation(now(), command, forced)
        self.invocations.append(self.current)

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text())
            records = [TaskRecord(**entry) for entry in document["tasks"]]
            self.invocations = [Invocation(**entry) for entry in document["invocations"]]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            log.warning("%s is unreadable (%s): starting a new record", self.path, error)
            return
        self.tasks = {(record.stage, record.task): record for record in records}

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        """Log a stage's wall time in this invocation and how many of its tasks ran."""
        clock = time.perf_counter()
        ran, skipped = len(self.current.ran), len(self.current.skipped)
        yield
        log.info(
            "stage %s: %.1f s, %d task(s) run, %d found done",
            stage,
            time.perf_counter() - clock,
            len(self.current.ran) - ran,
            len(self.current.skipped) - skipped,
        )

    @contextmanager
    def run(self, stage: str, task: str, note: str = "") -> Iterator[None]:
        """Time the work done inside the block; record it if it completes."""
        started, clock = now(), time.perf_counter()
        log.info("%s %s: running%s", stage, task, f" ({note})" if note else "")
        yield
        self.record(stage, task, started, time.perf_counter() - clock, note)

    def record(self, stage: str, task: str, started: str, seconds: float, note: str = "") -> None:
        """Record a task that ran (elsewhere, e.g. in a worker process) from `started` on."""
        seconds = round(seconds, 2)
        self.tasks[(stage, task)] = TaskRecord(stage, task, started, now(), seconds, RAN, note)
        self.current.ran.append(f"{stage} {task}")
        log.info("%s %s: done in %.1f s", stage, task, seconds)
        self.save()

    def skip(self, stage: str, task: str, reason: str) -> None:
        """The task was found finished: keep the times of the invocation that did it."""
        previous = self.tasks.get((stage, task))
        if previous is None:
            previous = TaskRecord(stage, task, "", "", 0.0, SKIPPED, reason)
        self.tasks[(stage, task)] = replace(previous, last_status=SKIPPED)
        self.current.skipped.append(f"{stage} {task}")
        log.info("%s %s: skipped, %s", stage, task, reason)
        self.save()

    def ran_any(self, stages: tuple[str, ...]) -> bool:
        """Whether the current invocation ran a task of any of `stages`."""
        return any(entry.split(" ", 1)[0] in stages for entry in self.current.ran)

    def current_records(self) -> list[TaskRecord]:
        """The records of the tasks this invocation ran or found done (not those of models
        an earlier invocation had and the configuration has since dropped)."""
        touched = set(self.current.ran) | set(self.current.skipped)
        return [
            record for record in self.tasks.values() if f"{record.stage} {record.task}" in touched
        ]

    def stage_records(self, stage: str) -> list[TaskRecord]:
        return [record for (name, _), record in self.tasks.items() if name == stage]

    def finish(self) -> None:
        self.current.ended = now()
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "experiment": self.experiment,
            "invocations": [asdict(invocation) for invocation in self.invocations],
            "tasks": [asdict(record) for record in self.tasks.values()],
        }
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(document, indent=1) + "\n")
        temporary.replace(self.path)
