"""`make demo` end to end: the front door must keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.phases import PHASES

pytestmark = [pytest.mark.e2e, pytest.mark.whole_migration]


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
    summary = json.loads(summary_line.removeprefix("summary: "))
    assert summary["phases"] == {str(p.number): "done" for p in PHASES}  # as the migration document records them
    assert summary["live_writes_source"] > 0 and summary["live_writes_target"] > 0
    assert summary["target_writes_missing_from_source_after_rollback"] == 0
    assert [s["action"] for s in summary["switches"]] == ["cutover", "rollback", "cutover"]
    handed = list((tmp_path / "demo" / "handover").glob("*.tf"))
    assert [p.name for p in handed] == ["Orders.tf"]
    assert 'resource "aws_dynamodb_table" "orders"' in handed[0].read_text()
    assert "orders-demo/state.json" in proc.stderr and "orders-demo/target.tfstate" in proc.stderr
