"""Real Terraform and provider against the emulator, without a whole migration: the refusals before any change
(wrong account, phases out of order) and plans (before the state bucket exists; the markdown of a real plan).
Apart from ``test_migration_terraform.py`` so that `make test` runs them beside its long migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.aws.session import AccountSession
from migrator.cli.plan import render_plan
from migrator.errors import MigratorError
from migrator.phases.runner import PhaseRunner

from .conftest import make_table
from .support import cli, migration, write_config

pytestmark = pytest.mark.terraform


def test_wrong_account_is_refused_before_any_change(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession
) -> None:
    table = "WrongAcct"
    make_table(source, table)
    # No role: the fake base credentials land in the emulator's default account 123456789012.
    cfg = write_config(tmp_path, moto_endpoint, "wrong-acct", table, target={"role_arn": None})
    m = migration(cfg)
    with pytest.raises(MigratorError, match="belong to account 123456789012, not the configured target account"):
        PhaseRunner(m).apply(1)
    names = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    assert m.config.bucket_name not in names
    assert not (m.state_dir / "terraform").exists()


def test_phases_run_in_order(tmp_path: Path, moto_endpoint: str, source: AccountSession) -> None:
    table = "OrderCheck"
    make_table(source, table)
    m = migration(write_config(tmp_path, moto_endpoint, "order-check", table))
    with pytest.raises(MigratorError, match="phase 3 \\(import\\) needs phase 1 \\(prepare\\) done first"):
        PhaseRunner(m).apply(3)


def test_a_plan_before_the_state_bucket_exists_says_so_and_plans_against_an_empty_state(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession
) -> None:
    table = "NoBucketYet"
    make_table(source, table)
    write_config(tmp_path, moto_endpoint, "no-bucket-yet", table, state={"bucket": "no-bucket-yet-state"})
    planned = cli(tmp_path, "plan", "--phase", "1", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    said = " ".join(planned.stderr.split())  # rich wraps lines at the terminal's width
    assert "does not exist yet (phase 1 creates it), so this plan is against an empty state" in said
    assert json.loads(planned.stdout.splitlines()[0])["counts"]["add"] >= 8
    assert "no-bucket-yet-state" not in {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}


def test_plan_markdown_summarises_a_real_plan(tmp_path: Path, moto_endpoint: str, source: AccountSession) -> None:
    table = "PlanOnly"
    make_table(source, table)
    m = migration(write_config(tmp_path, moto_endpoint, "plan-only", table))
    (report,) = PhaseRunner(m).plan(1)
    assert report.has_changes and report.counts["add"] >= 8 and report.table_replacements == []
    text = render_plan(report, "markdown")
    assert f"| {report.counts['add']} | 0 | 0 | 0 |" in text
    assert "module.export_bucket[0].aws_s3_bucket.this" in text
    assert m.state.phase_status(1) == "not started"  # a plan changes nothing
    names = {b["Name"] for b in m.target.client("s3").list_buckets()["Buckets"]}
    assert m.config.bucket_name not in names
