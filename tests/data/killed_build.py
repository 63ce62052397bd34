"""A build whose workers sleep, for the test that kills it (run as `python -m`)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omnirouter.data.synth.tasks import run_tasks


@dataclass(frozen=True)
class SleepingTask:
    pid_dir: str

    def __len__(self) -> int:
        return 1

    @property
    def cost(self) -> float:
        return 1.0

    def run(self) -> int:
        Path(self.pid_dir, str(os.getpid())).touch()
        time.sleep(120)
        return 1


if __name__ == "__main__":
    run_tasks([SleepingTask(sys.argv[1])] * 4, jobs=2, description="sleeping")
