"""The quick part of the fault-injection script (benchmarks/faults.py) runs with the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "faults.py"


def test_every_quick_fault_case_behaves_as_expected(tmp_path):
    # not the tracking store an earlier test pointed MLflow at (set_tracking_uri exports it)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADML_"))}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--work", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    lines = [line for line in done.stdout.splitlines() if " | " in line][1:]
    assert len(lines) >= 15, done.stdout + done.stderr[-2000:]
    failed = [line for line in lines if not line.endswith("| ok")]
    assert not failed and done.returncode == 0, "\n".join(failed) or done.stderr[-2000:]
