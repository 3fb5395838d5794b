"""`make demo` end to end: the front door must keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_migrates_under_live_writes_and_verifies_clean(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "migrator.cli", "demo", "--items", "400", "--workdir", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (verdict["missing"], verdict["different"], verdict["extraneous"]) == (0, 0, 0)
    assert verdict["source_items"] == verdict["target_items"] > 0
    summary_line = next(line for line in proc.stderr.splitlines() if line.startswith("summary: "))
    assert '"live_writes"' in summary_line
    summary = json.loads(summary_line.removeprefix("summary: "))
    assert summary["phases"] == {str(n): "done" for n in (1, 2, 3, 4, 5)}  # as the migration document records them
    assert "orders-demo/state.json" in proc.stderr and "orders-demo/target.tfstate" in proc.stderr
