"""The README's main-job command: `pairexec demo` must pass every scenario it shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_passes_all_scenarios(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20/20 passed (seed scenarios 7/7)" in result.stdout
    assert len(re.findall(r"│ pass\s+│", result.stdout)) == 20
    assert not re.search(r"│ FAIL\s+│", result.stdout)
