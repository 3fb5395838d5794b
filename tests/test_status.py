"""`migrator status`: read from the accounts, every piece shown or said unavailable, stable JSON."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.cli.status import countdown, short, show_status
from migrator.clock import iso, now
from migrator.context import MigrationContext
from migrator.readmodels.status import (
    DeadlineView,
    ExportView,
    ImportView,
    ReplicatorView,
    collect_status,
    deadline_view,
    inferred_phase,
    read_replicator,
)
from migrator.state import MigrationState

from .conftest import make_table
from .support import migration, write_config

TOP_KEYS = {
    "migration",
    "source",
    "target",
    "read_at",
    "phases",
    "export",
    "import",
    "replicator",
    "direction",
    "stream_deadline",
    "last_verify",
    "lock",
    "handover",  # null until `migrator handover` ran (tests/test_handover.py)
    "next",
}
SECTION_KEYS = {
    "export": set(ExportView.__annotations__),
    "import": set(ImportView.__annotations__),
    "replicator": set(ReplicatorView.__annotations__),
    "stream_deadline": set(DeadlineView.__annotations__),
    "last_verify": {"at", "clean", "source_items", "target_items", "missing", "different", "extraneous"},
    "lock": {"held", "holder", "since", "alive", "unavailable"},
    "direction": {
        "current",
        "recorded",
        "forward_mapping",
        "reverse_mapping",
        "history",
        "cleanup_removed",
        "unavailable",
    },
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass
class Env:
    """One migration's config on the emulator, and builders for the pieces phases 1–4 would create."""

    m: MigrationContext
    config: Path
    table: str
    source: AccountSession
    target: AccountSession

    def source_table(self, items: int = 0) -> str:
        """The source table (stream + PITR) with ``items`` items; returns the stream ARN."""
        desc = make_table(self.source, self.table)
        put_items(self.source.client("dynamodb"), self.table, items)
        return str(desc["LatestStreamArn"])

    def target_table(self, items: int = 0) -> None:
        make_table(self.target, self.m.config.target_table_name, stream=None, pitr=False)
        put_items(self.target.client("dynamodb"), self.m.config.target_table_name, items)

    def replicator(self, stream_arn: str, *, enabled: bool) -> str:
        """The replicator's role, function and event source mapping in the source account; returns its UUID."""
        name = self.m.config.replicator_name
        role = self.source.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
        self.source.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="handler.handle",
            Code={"ZipFile": small_zip()},
        )
        # LATEST: the emulator runs enabled mappings, and these tests read a mapping's state, not a
        # replicator's progress; from LATEST the stand-in function gets nothing, so no IteratorAge appears.
        mapping = self.source.client("lambda").create_event_source_mapping(
            EventSourceArn=stream_arn,
            FunctionName=name,
            Enabled=enabled,
            StartingPosition="LATEST",
            BatchSize=100,
        )
        return str(mapping["UUID"])

    def failure_bucket(self) -> str:
        self.source.client("s3").create_bucket(Bucket=self.m.config.failure_bucket_name)
        return self.m.config.failure_bucket_name

    def export(self, export_time: dt.datetime, bucket: str | None = None) -> str:
        """An export of the source table into a bucket of the target account, waited for; returns its ARN."""
        bucket = bucket or self.m.config.bucket_name
        self.target.client("s3").create_bucket(Bucket=bucket)
        ddb = self.source.client("dynamodb")
        table_arn = ddb.describe_table(TableName=self.table)["Table"]["TableArn"]
        arn = ddb.export_table_to_point_in_time(
            TableArn=table_arn,
            ExportTime=export_time,
            S3Bucket=bucket,
            S3BucketOwner=self.m.config.target.account_id,
            S3Prefix=self.m.config.export_s3_prefix,
            ExportFormat="DYNAMODB_JSON",
        )["ExportDescription"]["ExportArn"]
        deadline = time.monotonic() + 30
        while ddb.describe_export(ExportArn=arn)["ExportDescription"]["ExportStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline, "the emulator's export did not finish"
            time.sleep(0.05)
        return str(arn)

    def status_json(self) -> dict[str, Any]:
        run = CliRunner().invoke(app, ["status", "--config", str(self.config), "--json"])
        assert run.exit_code == 0, run.output
        lines = run.stdout.splitlines()
        assert len(lines) == 1, run.stdout
        data: dict[str, Any] = json.loads(lines[0])
        return data

    def status_text(self) -> str:
        run = CliRunner().invoke(app, ["status", "--config", str(self.config)], env={"COLUMNS": "200"})
        assert run.exit_code == 0, run.output
        assert "Traceback" not in run.output
        return str(run.stdout)


def small_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handle(event, context):\n    return {}\n")
    return buf.getvalue()


def put_items(ddb: Any, table: str, count: int) -> None:
    for n in range(count):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n:04d}"}, "n": {"N": str(n)}})


def make_env(directory: Path, endpoint: str, source: AccountSession, target: AccountSession, unique: str) -> Env:
    table = f"status-{unique}"
    config = write_config(directory, endpoint, f"st-{unique}", table)
    return Env(migration(config), config, table, source, target)


@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str) -> Env:
    return make_env(tmp_path, moto_endpoint, source, target, unique)


def assert_stable_shape(data: dict[str, Any]) -> None:
    assert set(data) == TOP_KEYS
    for section, keys in SECTION_KEYS.items():
        assert set(data[section]) == keys, section
    assert [p["phase"] for p in data["phases"]] == [1, 2, 3, 4, 5, 6]
    for p in data["phases"]:
        assert set(p) == {"phase", "name", "account", "status", "at", "origin"}


# Through the CLI ------------------------------------------------------------------------------------
def test_status_json_of_a_fresh_migration_says_export_not_started_mapping_absent_no_deadline_never_verified(
    env: Env,
) -> None:
    env.source_table(items=3)

    data = env.status_json()

    assert_stable_shape(data)
    assert [p["status"] for p in data["phases"]] == ["not started"] * 6
    assert data["export"]["status"] == "not started"
    assert data["export"]["unavailable"] is None
    assert data["import"]["status"] == "not started"
    assert data["import"]["table"] == "absent"
    assert data["replicator"]["mapping"] == "absent"
    assert data["replicator"]["failures_waiting"] is None
    assert f"the failure bucket {env.m.config.failure_bucket_name} does not exist" in data["replicator"]["unavailable"]
    assert data["stream_deadline"] == {"at": None, "seconds_left": None, "passed": None, "unavailable": None}
    assert data["last_verify"]["at"] is None
    assert data["last_verify"]["clean"] is None


def test_status_shows_mapping_state_export_time_items_and_a_deadline_countdown(env: Env) -> None:
    stream = env.source_table(items=7)
    uuid = env.replicator(stream, enabled=False)
    env.failure_bucket()
    exported_at = now() - dt.timedelta(minutes=5)
    env.export(exported_at)
    # What phase 2 records before it gets an ARN back: the ExportTime and start (moto's export reports neither).
    env.m.state.update("export", export_time=iso(exported_at), start_time=iso(exported_at))

    data = env.status_json()

    assert_stable_shape(data)
    export = data["export"]
    assert (export["status"], export["items"], export["export_time"]) == ("COMPLETED", 7, iso(exported_at))
    assert export["bytes"] > 0
    assert data["replicator"]["mapping"] == "Disabled"
    assert data["replicator"]["mapping_uuid"] == uuid  # found by function name: no UUID in the state
    assert data["replicator"]["failures_waiting"] == 0
    assert data["replicator"]["iterator_age_ms"] is None
    assert data["replicator"]["unavailable"] is None
    deadline = data["stream_deadline"]
    assert deadline["passed"] is False
    assert 23 * 3600 + 50 * 60 < deadline["seconds_left"] <= 24 * 3600 - 5 * 60
    assert deadline["at"] == iso(exported_at + dt.timedelta(hours=24))

    text = env.status_text()
    assert f"ExportTime {short(iso(exported_at))} (local record)" in text
    assert "7 items" in text
    assert "mapping Disabled" in text
    assert "23 h 5" in text  # the countdown: 23 h 54/55 min left
    assert "min left" in text


def test_status_says_the_source_table_is_missing_instead_of_crashing(env: Env) -> None:
    data = env.status_json()

    assert_stable_shape(data)
    assert data["export"]["status"] is None
    assert data["export"]["unavailable"] == (
        f"the source table {env.table} does not exist in {env.m.config.source.account_id}/us-east-1"
    )
    assert data["stream_deadline"]["unavailable"] == "the export could not be read"
    assert data["phases"][1]["status"] == "unknown"

    text = env.status_text()
    assert f"unavailable: the source table {env.table} does not exist" in text


def test_status_keeps_the_mapping_when_the_failure_bucket_is_missing(env: Env) -> None:
    stream = env.source_table()
    env.replicator(stream, enabled=True)

    data = env.status_json()

    rep = data["replicator"]
    assert rep["mapping"] == "Enabled"
    assert rep["failures_waiting"] is None
    assert rep["unavailable"] == (
        f"failure destination: the failure bucket {env.m.config.failure_bucket_name} does not exist "
        "(phase 2 creates it)"
    )
    assert "unavailable: failure destination" in env.status_text()


# Reading from AWS rather than the local state ---------------------------------------------------------
def test_status_finds_this_migrations_export_with_list_exports_when_nothing_is_recorded(env: Env) -> None:
    env.source_table(items=4)
    ours = env.export(now() - dt.timedelta(minutes=2))
    env.export(now() - dt.timedelta(minutes=1), bucket=f"{env.m.config.bucket_name}-other")  # not this migration's

    s = collect_status(env.m)

    assert s["export"]["arn"] == ours
    assert (s["export"]["status"], s["export"]["items"]) == ("COMPLETED", 4)
    assert s["export"]["export_time"] is None  # moto reports none and nothing is recorded on this machine
    assert s["stream_deadline"]["unavailable"] == "the export reports no ExportTime or StartTime"


def test_status_infers_phases_from_aws_on_a_machine_without_local_state(env: Env) -> None:
    stream = env.source_table(items=2)
    env.replicator(stream, enabled=False)
    env.export(now())

    s = collect_status(env.m)

    assert [(p["status"], p["origin"]) for p in s["phases"]] == [
        ("applied", "aws"),  # the export bucket exists
        ("done", "aws"),  # the export completed
        ("not started", "aws"),  # no target table
        ("not started", "aws"),  # the mapping is not enabled
        ("not started", "aws"),  # no reverse mapping
        ("not started", "aws"),  # no target table, so nothing was cleaned up
    ]


def test_status_prefers_the_local_phase_record_and_shows_when(env: Env) -> None:
    env.source_table()
    env.m.state.mark_phase(1, "done")
    env.m.state.mark_phase(2, "failed")

    phases = collect_status(env.m)["phases"]

    assert [(p["status"], p["origin"]) for p in phases[:2]] == [("done", "recorded"), ("failed", "recorded")]
    assert phases[0]["at"] == env.m.state.phase_record(1)["done_at"]
    assert phases[1]["at"] == env.m.state.phase_record(2)["failed_at"]


def test_status_watch_json_prints_one_object_per_round_and_rereads_the_state(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.source_table()
    show_status(env.m, as_json=True, watch=True, interval=0, rounds=1)
    MigrationState(store=env.m.state.store).update("replication", local_lag_s=2.5, local_caught_up=True)  # another run
    show_status(env.m, as_json=True, watch=True, interval=0, rounds=2)

    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]

    assert len(lines) == 3
    assert [x["replicator"]["local_lag_s"] for x in lines] == [None, 2.5, 2.5]


# Pure pieces ----------------------------------------------------------------------------------------
EXPORT_NOT_STARTED = ExportView(
    status="not started",
    arn=None,
    export_time=None,
    start_time=None,
    end_time=None,
    items=None,
    bytes=None,
    failure=None,
    origin="aws",
    unavailable=None,
)


def test_deadline_counts_from_the_earlier_of_export_time_and_start_and_says_when_it_passed() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    export = ExportView(
        **{
            **EXPORT_NOT_STARTED,
            "status": "COMPLETED",
            "export_time": iso(t0),
            "start_time": iso(t0 + dt.timedelta(minutes=3)),
        }
    )

    live = deadline_view(export, {}, 24, t0 + dt.timedelta(hours=1))
    passed = deadline_view(export, {}, 24, t0 + dt.timedelta(hours=25))

    assert live == {
        "at": iso(t0 + dt.timedelta(hours=24)),
        "seconds_left": 23 * 3600,
        "passed": False,
        "unavailable": None,
    }
    assert passed["passed"] is True
    assert countdown(live["seconds_left"] or 0) == "23 h 00 min left"
    assert countdown(passed["seconds_left"] or 0).startswith("PASSED")


def replicator(mapping: str | None) -> ReplicatorView:
    return ReplicatorView(
        mapping=mapping,
        mapping_uuid=None,
        iterator_age_ms=None,
        local_lag_s=None,
        local_caught_up=None,
        local_last_run=None,
        failures_waiting=None,
        reverse_mapping=None,
        reverse_mapping_uuid=None,
        unavailable=None,
    )


IMPORT_ABSENT = ImportView(
    status="not started", table="absent", imported=None, errors=None, origin="aws", unavailable=None
)


@pytest.mark.parametrize(
    ("number", "export_status", "import_view", "mapping", "bucket", "expected"),
    [
        (1, "not started", IMPORT_ABSENT, "absent", "absent", "not started"),
        (1, "not started", IMPORT_ABSENT, "absent", "present", "applied"),
        (1, "not started", IMPORT_ABSENT, "absent", None, "unknown"),
        (2, "IN_PROGRESS", IMPORT_ABSENT, "Disabled", None, "in progress"),
        (2, "FAILED", IMPORT_ABSENT, "Disabled", None, "failed"),
        (2, "not started", IMPORT_ABSENT, "Disabled", None, "applied"),
        (2, None, IMPORT_ABSENT, "Disabled", None, "unknown"),
        (
            3,
            "COMPLETED",
            {**IMPORT_ABSENT, "status": "IN_PROGRESS", "table": "CREATING"},
            "Disabled",
            None,
            "in progress",
        ),
        (3, "COMPLETED", {**IMPORT_ABSENT, "status": "COMPLETED", "table": "ACTIVE"}, "Disabled", None, "done"),
        (
            3,
            "COMPLETED",
            {**IMPORT_ABSENT, "status": None, "table": "ACTIVE", "origin": "recorded"},
            "Disabled",
            None,
            "applied",
        ),
        (3, "COMPLETED", {**IMPORT_ABSENT, "status": None, "table": None}, "Disabled", None, "unknown"),
        (4, "COMPLETED", IMPORT_ABSENT, "Enabled", None, "applied"),
        (4, "COMPLETED", IMPORT_ABSENT, "Disabled", None, "not started"),
        (4, "COMPLETED", IMPORT_ABSENT, None, None, "unknown"),
    ],
)
def test_inferred_phase_from_what_exists_in_aws(
    number: int,
    export_status: str | None,
    import_view: ImportView,
    mapping: str | None,
    bucket: str | None,
    expected: str,
) -> None:
    export = ExportView(**{**EXPORT_NOT_STARTED, "status": export_status})

    assert inferred_phase(number, export, import_view, replicator(mapping), bucket) == expected


def test_a_caught_up_local_run_counts_its_lag_from_when_it_ended(env: Env) -> None:
    env.source_table()
    m = env.m
    m.state.update(
        "replication", local_lag_s=900.0, local_caught_up=True, local_last_run=iso(now() - dt.timedelta(seconds=2))
    )
    view = read_replicator(m, m.state)
    assert view["local_lag_s"] is not None and 1.0 < view["local_lag_s"] < 60.0
    m.state.update("replication", local_caught_up=False)
    assert read_replicator(m, m.state)["local_lag_s"] == 900.0
