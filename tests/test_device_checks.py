"""scripts/device_checks.sh: the prepared run of the GPU checks, rehearsed on the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "device_checks.sh"


def test_script_parses_and_is_clean() -> None:
    assert SCRIPT.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
def test_rehearsal_runs_steps_and_counts_failures(tmp_path) -> None:
    """SMOKE=1 on the CPU: the glm step runs the benchmark; an unknown step is a failure that
    does not stop the others; the exit status counts the failures."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "SMOKE": "1", "NPROCS": "2",
           "PYTHON": sys.executable, "STEP_TIMEOUT": "300"}
    proc = subprocess.run([str(SCRIPT), "bogus", "glm"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("unknown step 'bogus'")
    assert summary[1].startswith("glm: exit 0 in ")
    log = (out / "steps.log").read_text()
    assert "===== glm" in log and "| 2000 | 5000 |" in log
    assert sorted(p.name for p in out.iterdir()) == ["steps.log", "summary.txt"]
