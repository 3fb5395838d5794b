"""Invariant guards (docs/architecture.md) exercised through the phases themselves, so removing a guard fails a
test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from migrator.aws.session import AccountSession
from migrator.clock import iso, now
from migrator.context import MigrationContext
from migrator.errors import MigratorError
from migrator.phases.export import start_or_resume_export
from migrator.phases.guards import check_deadline, retention_deadline

from .conftest import make_table
from .support import apply, migration, write_config


def _prepared(
    tmp_path: Path, endpoint: str, source: AccountSession, unique: str, *, pitr: bool = True
) -> MigrationContext:
    """A migration whose phase 1 is recorded as done, without running Terraform."""
    table = f"Guard{unique}"
    desc = make_table(source, table, pitr=pitr)
    m = migration(write_config(tmp_path, endpoint, f"guard-{unique}", table))
    m.state.update(
        "stream",
        arn=desc["LatestStreamArn"],
        table_arn=desc["TableArn"],
        view_type="NEW_AND_OLD_IMAGES",
        created_at=iso(now() - dt.timedelta(minutes=10)),
    )
    m.state.mark_phase(1, "done")
    return m


def _exports(source: AccountSession, m: MigrationContext) -> list[dict[str, object]]:
    arn = m.state.section("stream")["table_arn"]
    return list(source.client("dynamodb").list_exports(TableArn=arn).get("ExportSummaries", []))


def test_export_is_refused_when_the_stream_started_after_the_export_time(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = _prepared(tmp_path, moto_endpoint, source, unique)
    m.state.update("stream", created_at=iso(now() + dt.timedelta(hours=1)))
    with pytest.raises(MigratorError, match="after the export time"):
        start_or_resume_export(m)
    assert _exports(source, m) == []


def test_export_is_refused_when_pitr_is_off(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = _prepared(tmp_path, moto_endpoint, source, unique, pitr=False)
    with pytest.raises(MigratorError, match="point-in-time recovery is off"):
        start_or_resume_export(m)
    assert _exports(source, m) == []


def test_export_time_before_the_pitr_window_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = _prepared(tmp_path, moto_endpoint, source, unique)
    m.state.update("stream", created_at=iso(now() - dt.timedelta(days=40)))
    m.state.update("export", attempt=1, client_token="t-1", export_time=iso(now() - dt.timedelta(days=36)))
    with pytest.raises(MigratorError, match="before the start of the PITR window"):
        start_or_resume_export(m)
    assert _exports(source, m) == []


@pytest.mark.parametrize("number", [3, 4])
def test_phases_3_and_4_refuse_to_go_on_past_the_stream_retention_deadline(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str, number: int
) -> None:
    m = _prepared(tmp_path, moto_endpoint, source, unique)
    for done in range(1, number):
        m.state.mark_phase(done, "done")
    m.state.update(
        "export",
        start_time=iso(now() - dt.timedelta(hours=24, minutes=1)),
        status="COMPLETED",
        item_count=0,
        data_prefix="x/data/",
    )
    with pytest.raises(MigratorError, match=r"stream-retention deadline .* has passed"):
        apply(m, number)
    assert m.state.phase_status(number) == "not started"
    assert not (m.state_dir / "terraform").exists()
    tables = target.client("dynamodb").list_tables()["TableNames"]
    assert m.config.target_table_name not in tables


def test_deadline_is_shown_while_there_is_time(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = _prepared(tmp_path, moto_endpoint, source, unique)
    m.state.update("export", start_time=iso(now() - dt.timedelta(hours=23)))
    deadline = retention_deadline(m)
    assert deadline is not None
    assert dt.timedelta(minutes=59) < deadline - now() <= dt.timedelta(hours=1)
    check_deadline(m)  # does not raise


def test_local_runner_refuses_to_race_an_enabled_lambda_mapping(tmp_path: Path) -> None:
    from botocore.stub import Stubber

    from migrator.dataplane.replicate import check_no_lambda_running

    path = tmp_path / "migration.yaml"
    path.write_text(
        "migration: race\n"
        "source: {account_id: '222222222222', region: us-east-1, table: Orders}\n"
        "target: {account_id: '111111111111', region: us-east-1}\n"
    )
    m = migration(path)
    lam = m.source.client("lambda")
    with Stubber(lam) as stub:
        stub.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": [{"UUID": "00000000-0000-0000-0000-000000000001", "State": "Enabled"}]},
        )
        with pytest.raises(
            MigratorError,
            match="mapping 00000000-0000-0000-0000-000000000001 is Enabled, so Lambda is already replaying",
        ):
            check_no_lambda_running(m)
        stub.add_response(
            "list_event_source_mappings",
            {"EventSourceMappings": [{"UUID": "00000000-0000-0000-0000-000000000001", "State": "Disabled"}]},
        )
        check_no_lambda_running(m)
