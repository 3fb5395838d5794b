"""State a team can share: the migration document and the lock in the state bucket, checked on every command."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.config import parse_config
from migrator.context import MigrationContext
from migrator.infra.state_bucket import ensure_state_bucket
from migrator.lock import LockHolder
from migrator.phases.runner import PhaseRunner
from migrator.state import SCHEMA

from .conftest import REGION, SOURCE_ACCOUNT, TARGET_ACCOUNT, make_table
from .support import migration, write_config


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})


def one_sentence(result: Any, fragment: str) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = result.stderr.strip().splitlines()[-1]
    assert text.startswith("error: ") and fragment in text, result.stderr
    return str(text)


@pytest.fixture
def m(tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str) -> MigrationContext:
    table = f"Shared{unique}"
    make_table(source, table)
    return migration(write_config(tmp_path, moto_endpoint, f"shared-{unique}", table))


# The document ---------------------------------------------------------------------------------------------
def _writer(config: str, section: str, endpoint_env: dict[str, str], start: Any) -> None:
    os.environ.update(endpoint_env)
    ctx = MigrationContext.load(Path(config))
    start.wait()
    for n in range(60):
        ctx.state.update(section, **{f"k{n:02d}": n})


def test_two_processes_changing_the_document_in_the_bucket_at_once_lose_nothing(m: MigrationContext) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    writers = [
        spawn.Process(target=_writer, args=(str(m.config_path), name, env, start)) for name in ("verify", "replication")
    ]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(timeout=300)
        assert w.exitcode == 0
    document = m.state.data
    for name in ("verify", "replication"):
        assert document[name] == {f"k{n:02d}": n for n in range(60)}, name
    assert document["schema"] == SCHEMA


def test_state_show_prints_the_document_of_the_bucket(m: MigrationContext) -> None:
    m.state.update("export", status="COMPLETED", item_count=3)
    shown = run("state", "show", "--json", "--config", str(m.config_path))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["export"] == {"status": "COMPLETED", "item_count": 3}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"{not json", "is not JSON", id="not JSON"),
        pytest.param(b"[1, 2]", "is a JSON list, not an object", id="not an object"),
        pytest.param(json.dumps({"schema": SCHEMA + 1}).encode(), "was written by a newer migrator", id="newer"),
        pytest.param(json.dumps({"export": [1]}).encode(), "has a section 'export' that is a list", id="bad section"),
        pytest.param(
            json.dumps({"phases": {"1": "done"}}).encode(), "phase record '1' that is not an object", id="bad phase"
        ),
    ],
)
def test_a_document_that_cannot_be_read_is_refused_in_one_sentence(
    m: MigrationContext, body: bytes, fragment: str
) -> None:
    m.state_s3().put_object(Bucket=m.config.state_bucket, Key=m.config.state_key, Body=body)
    for command in (("status",), ("state", "show"), ("verify",)):
        text = one_sentence(run(*command, "--config", str(m.config_path)), fragment)
        assert f"s3://{m.config.state_bucket}/{m.config.state_key}" in text


# The lock -------------------------------------------------------------------------------------------------
def _hold(m: MigrationContext, holder: LockHolder) -> None:
    m.state_s3().put_object(
        Bucket=m.config.state_bucket,
        Key=m.config.lock_key,
        Body=json.dumps(holder.__dict__).encode(),
        IfNoneMatch="*",
    )


def test_a_second_mutating_command_is_refused_at_once_and_read_only_ones_never_wait(m: MigrationContext) -> None:
    _hold(m, LockHolder("alice", "ops-host-7", 4242, "migrator apply --phase 2", "2026-12-01T10:00:00.000+00:00"))
    config = str(m.config_path)
    for command in (("replicate", "--local"), ("redrive",), ("verify", "--repair"), ("apply", "--phase", "1")):
        m.state.update("phases", **{"3": {"status": "done"}})  # replicate needs the import done to get that far
        one_sentence(
            run(*command, "--config", config),
            "the migration is locked by alice@ops-host-7 (pid 4242, `migrator apply --phase 2`)",
        )
    status = run("status", "--json", "--config", config)
    assert status.exit_code == 0, status.output
    lock = json.loads(status.stdout.splitlines()[-1])["lock"]
    assert (lock["held"], lock["holder"], lock["alive"]) == (
        True,
        "alice@ops-host-7 (pid 4242, `migrator apply --phase 2`)",
        None,  # another host: whether it still runs cannot be known here
    )


def test_the_lock_is_released_when_a_run_fails_or_is_interrupted(
    m: MigrationContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    for error in (RuntimeError("boom"), KeyboardInterrupt()):

        def fail(self: PhaseRunner, *args: Any, error: BaseException = error) -> None:
            assert m.lock.holder() is not None  # held while the phase runs
            raise error

        monkeypatch.setattr(PhaseRunner, "_apply_locked", fail)
        with pytest.raises(type(error)):
            PhaseRunner(m).apply(1)
        assert m.lock.holder() is None


def test_a_lock_left_by_a_killed_run_shows_in_status_and_unlock_force_removes_it(m: MigrationContext) -> None:
    dead = LockHolder(
        "bob", socket.gethostname(), 2**22 + 17, "migrator apply --phase 3", "2026-12-01T09:00:00.000+00:00"
    )  # a pid above Linux's pid_max: a process that is gone
    _hold(m, dead)
    m.state.mark_phase(3, "in progress")
    config = str(m.config_path)
    data = json.loads(run("status", "--json", "--config", config).stdout.splitlines()[-1])
    assert (data["lock"]["held"], data["lock"]["alive"]) == (True, False)
    assert data["phases"][2]["status"] == "interrupted"
    assert "`migrator unlock --force`" in data["next"] and "run `make phase-3` again" in data["next"]
    one_sentence(run("unlock", "--config", config), "migrator unlock --force")
    removed = run("unlock", "--force", "--config", config)
    assert removed.exit_code == 0, removed.output
    assert f"removed the lock of bob@{dead.host} (pid {dead.pid}, `migrator apply --phase 3`)" in removed.stderr
    assert m.lock.holder() is None


# Every command checks what it works on --------------------------------------------------------------------
def test_every_command_refuses_a_config_whose_source_or_target_differs_from_the_recorded_one(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, m: MigrationContext
) -> None:
    m.state.replace("fingerprint", m.fingerprint())
    m.state.mark_phase(3, "done")
    elsewhere = f"{m.config.target_table_name}-other"
    make_table(target, elsewhere, stream=None, pitr=False)
    (tmp_path / "edited").mkdir()
    moved = write_config(
        tmp_path / "edited",
        moto_endpoint,
        m.config.migration,
        m.config.source_table_name,
        target={"table": elsewhere},
    )
    for command in (
        ("status",),
        ("state", "show"),
        ("verify",),
        ("replicate", "--local", "--until-caught-up"),
        ("redrive",),
        ("cutover", "--check"),
        ("plan", "--phase", "1"),
        ("apply", "--phase", "2"),
    ):
        text = one_sentence(run(*command, "--config", str(moved)), "give this migration another name")
        assert f"{TARGET_ACCOUNT}/{REGION}/{m.config.target_table_name}" in text
        assert f"{TARGET_ACCOUNT}/{REGION}/{elsewhere}" in text
    assert target.client("dynamodb").scan(TableName=elsewhere)["Count"] == 0  # nothing replayed into it


# The state bucket -----------------------------------------------------------------------------------------
def test_the_state_bucket_is_created_hardened(target: AccountSession, unique: str) -> None:
    config = parse_config(
        {
            "migration": "hardened",
            "source": {"account_id": SOURCE_ACCOUNT, "region": REGION, "table": "Any"},
            "target": {"account_id": TARGET_ACCOUNT, "region": REGION},
            "state": {"bucket": f"state-{unique}"},
        }
    )
    s3 = target.client("s3")
    assert ensure_state_bucket(s3, config) is True
    assert ensure_state_bucket(s3, config) is False  # an existing bucket is used as it is
    bucket = f"state-{unique}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}
    ]
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    s3.put_object(Bucket=bucket, Key="over-tls", Body=b"x")  # the emulator serves TLS: the policy lets it in


def test_a_state_bucket_owned_by_another_account_is_refused_and_nothing_changes(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    other = AccountSession("333333333333", REGION, "arn:aws:iam::333333333333:role/Ops", endpoint_url=moto_endpoint)
    other.client("s3").create_bucket(Bucket=f"theirs-{unique}")
    table = f"Theirs{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"theirs-{unique}", table, state={"bucket": f"theirs-{unique}"})
    before = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    one_sentence(
        run("apply", "--phase", "1", "--config", str(cfg)),
        f"the state bucket theirs-{unique} exists in another account than the target account {TARGET_ACCOUNT}",
    )
    assert {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]} == before
    roles = {r["RoleName"] for r in target.client("iam").list_roles()["Roles"]}
    assert f"theirs-{unique}-writer" not in roles


def test_a_state_bucket_name_that_is_not_an_s3_name_is_refused_before_any_aws_call(tmp_path: Path) -> None:
    path = tmp_path / "migration.yaml"
    path.write_text(
        "migration: badname\n"
        "source: {account_id: '222222222222', region: us-east-1, table: Orders}\n"
        "target: {account_id: '111111111111', region: us-east-1}\n"
        "state: {bucket: My_State}\n"
    )
    result = run("apply", "--phase", "1", "--config", str(path))
    assert result.exit_code == 2
    one_sentence(result, "'state.bucket' is not a valid S3 bucket name")
    assert not (tmp_path / ".migrator").exists()
