"""Two CPU processes under torchrun (gloo) keep identical MoE replicas without find_unused_parameters."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize("family", ["switch", "omni"])
def test_two_process_ddp_replicas_stay_identical(tmp_path: Path, family: str) -> None:
    result_path = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            str(result_path),
            family,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert result["world_size"] == 2
    assert result["max_abs_difference"] == 0.0
    assert all(math.isfinite(loss) for loss in result["losses"])
