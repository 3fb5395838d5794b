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
        [sys.executable, "-m", "migrator.cli", "demo", "--items", "400", "--workdir", str(tmp_path / "demo"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = proc.stdout.strip().splitlines()  # --json: one object on stdout
    summary = json.loads(line)
    assert summary["ok"] is True
    verdict = summary["verify"]
    assert (verdict["missing"], verdict["different"], verdict["extraneous"]) == (0, 0, 0)
    assert verdict["source_items"] == verdict["target_items"] > 0
    printed = json.loads(
        next(ln for ln in proc.stderr.splitlines() if ln.startswith("summary: ")).removeprefix("summary: ")
    )
    assert {k: v for k, v in summary.items() if k not in ("ok", "verify")} == printed  # the same numbers
    assert summary["phases"] == {str(p.number): "done" for p in PHASES}  # as the migration document records them
    assert summary["live_writes_source"] > 0 and summary["live_writes_target"] > 0
    assert summary["target_writes_missing_from_source_after_rollback"] == 0
    assert [s["action"] for s in summary["switches"]] == ["cutover", "rollback", "cutover"]
    # Where the time went: every step, each with a start and an end line, the phases with their Terraform runs.
    steps = {s["step"]: s for s in summary["steps"]}
    for p in PHASES:
        step = steps[f"phase {p.number} ({p.name})"]
        # Terraform's time is summed over the phase's roots, which may run at once; both numbers are rounded.
        assert step["terraform_runs"] > 0 and 0 < step["terraform_s"] <= step["seconds"] * len(p.roots) + 0.1
        assert f"▶ phase {p.number} ({p.name})" in proc.stderr
        assert f"■ phase {p.number} ({p.name}): {step['seconds']:.1f} s" in proc.stderr
    switched = [s["step"].split()[0] for s in summary["steps"] if s["step"].startswith(("cutover", "rollback"))]
    assert switched == ["cutover", "rollback", "cutover"]
    assert {"plan", "apply", "init"} <= set(summary["terraform"])
    assert all(r["address"] and r["step"] in steps for r in summary["slowest_resources"])
    assert "where the demo's" in proc.stderr  # the table of the steps
    handed = list((tmp_path / "demo" / "handover").glob("*.tf"))
    assert [p.name for p in handed] == ["Orders.tf"]
    assert 'resource "aws_dynamodb_table" "orders"' in handed[0].read_text()
    assert "orders-demo/state.json" in proc.stderr and "orders-demo/target.tfstate" in proc.stderr
