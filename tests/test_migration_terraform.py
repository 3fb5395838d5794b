"""Real Terraform and provider against the emulator, in two accounts, through the migrator's phases."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.aws.dynamodb import count_items
from migrator.aws.session import AccountSession
from migrator.cli.plan import render_plan
from migrator.dataplane.replicate import run_local
from migrator.dataplane.verify import ScanEngine
from migrator.dataplane.verify.run import run_verify
from migrator.dev.demo import LiveWriter, fill
from migrator.dev.emulator import find_emulator
from migrator.errors import MigratorError
from migrator.phases import ApplyOptions
from migrator.phases.import_table import TABLE_ADDRESS
from migrator.phases.runner import PhaseRunner
from migrator.progress import QuietReporter

from .conftest import FAKE_KEY_ID, FAKE_SECRET, SOURCE_ACCOUNT, TARGET_ACCOUNT, make_table
from .support import cli, migration, write_config

pytestmark = [pytest.mark.terraform, pytest.mark.whole_migration]


FILLED = 300


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> dict[str, object]:
    """One whole migration under live writes, on two machines: phases 1–2 in one working directory (whose
    cache is then deleted), the plan review from a third, clean one, phases 3–4 and status from a second;
    catch-up through the deployed function, then verify.

    Shared by the checks below, because real Terraform against the emulator is slow. The source table
    starts without stream and PITR, so phase 1's --enable-stream/--enable-pitr are exercised too.
    """
    tmp = tmp_path_factory.mktemp("tf")
    first, review, second = tmp / "first", tmp / "review", tmp / "second"
    source = AccountSession(
        SOURCE_ACCOUNT, "us-east-1", f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops", endpoint_url=moto_endpoint
    )
    table = "TfOrders"
    make_table(source, table, stream=None, pitr=False)
    ddb = source.client("dynamodb")
    fill(ddb, FILLED, random.Random(5), table=table)
    for directory in (first, review, second):
        directory.mkdir()
        write_config(directory, moto_endpoint, "tf-roots", table)  # the same migration.yaml on each machine
    before = migration(first / "migration.yaml")
    writer = LiveWriter(ddb, FILLED, table=table, pause=0.05)
    writer.start()
    try:
        runner = PhaseRunner(before)
        runner.apply(1, ApplyOptions(enable_stream=True, enable_pitr=True))
        shutil.rmtree(before.state_dir)  # the cache holds nothing the next phase needs
        runner = PhaseRunner(migration(first / "migration.yaml"))
        runner.apply(2)
        mapping_after_2 = before.source.client("lambda").get_event_source_mapping(
            UUID=before.state.section("source_outputs")["event_source_mapping_uuid"]
        )["State"]
        shutil.rmtree(first / ".migrator")
        plan_review = cli(review, "plan", "--all", "--format", "markdown")  # the PR comment, from a clean directory
        m = migration(second / "migration.yaml")  # another machine: only migration.yaml is there
        runner = PhaseRunner(m)
        runner.apply(3)
        runner.apply(4)  # enables the mapping: the emulator runs the deployed function from here
        status_second = cli(second, "status", "--json")
    finally:
        counts = writer.stop()
    emulator = find_emulator(moto_endpoint)
    assert emulator is not None
    uuid = m.state.section("source_outputs")["event_source_mapping_uuid"]
    assert emulator.wait_for_lambda(600, [uuid]), emulator.lambda_stats()
    try:
        run_local(m, until_caught_up=True)
        local_refused = ""
    except MigratorError as refused:
        local_refused = str(refused)
    result = run_verify(m, engine=ScanEngine(segments=4, workers=4)).result
    third = tmp / "third"  # yet another machine, after catch-up: read-only commands see it all
    third.mkdir()
    write_config(third, moto_endpoint, "tf-roots", table)
    verify_third = cli(third, "verify", "--json")
    gate_third = cli(third, "cutover", "--check", "--json")
    return {
        "verify_third": verify_third,
        "gate_third": gate_third,
        "m": m,
        "runner": runner,
        "config": second / "migration.yaml",
        "table": table,
        "mapping_after_2": mapping_after_2,
        "live": counts,
        "verify": result,
        "lambda": emulator.lambda_stats()[uuid],
        "local_refused": local_refused,
        "plan_review": plan_review,
        "status_second": status_second,
    }


def test_whole_migration_under_live_writes_verifies_clean(migrated: dict[str, object]) -> None:
    live = migrated["live"]
    assert sum(live.values()) > 50, live  # type: ignore[attr-defined]
    assert live["deletes"] > 0 and live["updates"] > 0 and live["puts"] > 0  # type: ignore[index]
    verdict = migrated["verify"].to_json()  # type: ignore[attr-defined]
    assert (verdict["missing"], verdict["different"], verdict["extraneous"]) == (0, 0, 0), verdict
    assert verdict["source_items"] == verdict["target_items"] > 0


def test_the_plan_review_comment_is_made_from_a_clean_directory_after_phases_ran_elsewhere(
    migrated: dict[str, object],
) -> None:
    review = migrated["plan_review"]
    assert review.returncode == 0, review.stderr  # type: ignore[attr-defined]
    comment = review.stdout  # type: ignore[attr-defined]
    headlines = [line for line in comment.splitlines() if line.startswith("### migrator plan: Phase")]
    # every phase of the list; 5 is not planned yet (it needs the target table), 6 plans both roots
    assert [h.split("Phase ")[1].split(" ")[0] for h in headlines] == ["1", "2", "3", "4", "5", "6", "6"]
    assert "Phase 1 (prepare) — target account 111111111111" in comment and "No changes." in comment  # read state
    assert "Phase 3 (import) — target account 111111111111" in comment  # planned from the recorded export


def test_verify_and_the_cutover_gate_from_a_clean_directory_see_the_migration(migrated: dict[str, object]) -> None:
    verify = migrated["verify_third"]
    assert verify.returncode == 0, verify.stderr  # type: ignore[attr-defined]
    verdict = json.loads(verify.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    assert (verdict["missing"], verdict["different"], verdict["extraneous"]) == (0, 0, 0)
    gate = json.loads(migrated["gate_third"].stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    assert [p["status"] for p in gate["phases"]] == ["done"] * 4 + ["not started"] * 2  # fallback, cleanup
    assert gate["replicator"]["mapping"] == "Enabled" and gate["verify"]["missing"] == 0


def test_a_second_machine_sees_what_the_first_did(migrated: dict[str, object]) -> None:
    status = migrated["status_second"]
    assert status.returncode == 0, status.stderr  # type: ignore[attr-defined]
    data = json.loads(status.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    assert [(p["phase"], p["status"], p["origin"]) for p in data["phases"]] == [
        (1, "done", "recorded"),
        (2, "done", "recorded"),
        (3, "done", "recorded"),
        (4, "done", "recorded"),
        (5, "not started", "aws"),
        (6, "not started", "aws"),
    ]
    assert data["export"]["status"] == "COMPLETED" and data["lock"]["held"] is False
    print(json.dumps({k: data[k] for k in ("phases", "export", "import", "replicator", "lock", "next")}, indent=1))


def test_the_deployed_function_replicated_the_changes(migrated: dict[str, object]) -> None:
    """Catch-up ran through the function Terraform deployed (the emulator invokes its zip), not the local
    runner, which the enabled mapping refused; the verify above is what proves it complete."""
    stats = migrated["lambda"]
    assert stats.batches > 0 and stats.records > 50, stats  # type: ignore[attr-defined]
    assert (stats.errors, stats.failed_batches) == (0, 0), stats  # type: ignore[attr-defined]


def test_the_local_runner_refuses_to_race_the_enabled_mapping(migrated: dict[str, object]) -> None:
    assert "is Enabled, so Lambda is already replaying the stream" in migrated["local_refused"]  # type: ignore[operator]
    assert "--no-enabled" in migrated["local_refused"]  # type: ignore[operator]


def test_export_bucket_lives_in_the_target_account_with_its_policy(
    migrated: dict[str, object], target: AccountSession, source: AccountSession
) -> None:
    m = migrated["m"]
    bucket = m.config.bucket_name  # type: ignore[attr-defined]
    s3 = target.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    statements = policy["Statement"]
    denies_plain_http = [
        s for s in statements if s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
    ]
    assert denies_plain_http
    writers = [s for s in statements if s["Effect"] == "Allow"]
    assert all(f"arn:aws:iam::{SOURCE_ACCOUNT}:root" in json.dumps(s["Principal"]) for s in writers)
    actions = {a for s in writers for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:PutObject" in actions and "s3:*" not in actions
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    buckets = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    assert bucket in buckets


def test_writer_role_trusts_only_the_replicator_with_external_id(
    migrated: dict[str, object], target: AccountSession
) -> None:
    m = migrated["m"]
    role = target.client("iam").get_role(RoleName=m.config.writer_role_name)["Role"]  # type: ignore[attr-defined]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    text = json.dumps(trust)
    assert m.config.writer_external_id in text  # type: ignore[attr-defined]
    assert m.config.replicator_role_arn in text  # type: ignore[attr-defined]
    policies = target.client("iam").list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    docs = [
        target.client("iam").get_role_policy(RoleName=role["RoleName"], PolicyName=p)["PolicyDocument"]
        for p in policies
    ]
    body = json.dumps(docs)
    assert f"table/{migrated['table']}" in body
    assert '"*"' not in body and "dynamodb:*" not in body


def test_target_table_holds_the_imported_items(migrated: dict[str, object], target: AccountSession) -> None:
    ddb = target.client("dynamodb")
    desc = ddb.describe_table(TableName=migrated["table"])["Table"]
    assert desc["TableArn"].split(":")[4] == TARGET_ACCOUNT
    m = migrated["m"]
    assert m.state.section("import")["imported"] == m.state.section("export")["item_count"] > 0  # type: ignore[attr-defined]
    assert desc.get("DeletionProtectionEnabled") is True


def test_mapping_is_created_disabled_then_enabled(migrated: dict[str, object], source: AccountSession) -> None:
    m = migrated["m"]
    assert migrated["mapping_after_2"] == "Disabled"
    uuid = m.state.section("source_outputs")["event_source_mapping_uuid"]  # type: ignore[attr-defined]
    mapping = source.client("lambda").get_event_source_mapping(UUID=uuid)
    assert mapping["State"] == "Enabled"
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["EventSourceArn"].split(":")[4] == SOURCE_ACCOUNT


def test_rerunning_a_phase_plans_no_change(migrated: dict[str, object]) -> None:
    runner = migrated["runner"]
    for number in (3, 4):
        (report,) = runner.plan(number)  # type: ignore[attr-defined]
        assert not report.has_changes, report.changes


def test_phase_state_is_recorded(migrated: dict[str, object]) -> None:
    m = migrated["m"]
    state = m.state.data  # type: ignore[attr-defined]  # the migration document, in the state bucket
    assert [state["phases"][str(n)]["status"] for n in (1, 2, 3, 4)] == ["done"] * 4
    assert state["export"]["status"] == "COMPLETED" and state["export"]["data_prefix"].endswith("/data/")
    assert state["import"]["imported"] == state["export"]["item_count"]
    assert state["stream"]["enabled_by_migrator_at"]


def test_table_replacement_is_refused_and_the_table_survives(
    migrated: dict[str, object], target: AccountSession
) -> None:
    """The Python guard is the one that refuses: Terraform plans the replacement (no prevent_destroy makes
    the plan fail), the plan review shows it, and apply refuses it with nothing applied."""
    m = migrated["m"]
    runner = migrated["runner"]
    ddb = target.client("dynamodb")
    before = count_items(ddb, migrated["table"])  # type: ignore[arg-type]
    created = ddb.describe_table(TableName=migrated["table"])["Table"]["CreationDateTime"]
    spec = m.state.section("import")["table_spec"]  # type: ignore[attr-defined]
    changed = dict(spec)
    changed["range_key"] = None  # a key change forces replacement
    changed["attributes"] = [a for a in spec["attributes"] if a["name"] != "sk"]
    m.state.update("import", table_spec=changed)  # type: ignore[attr-defined]
    table = "module.target_table[0].aws_dynamodb_table.this"
    try:
        (plan,) = runner.plan(3)  # type: ignore[attr-defined]
        assert plan.table_replacements == [table]
        assert "CAUTION" in render_plan(plan, "markdown")
        with pytest.raises(MigratorError, match=r"destroy|replace") as refused:
            runner.apply(3)  # type: ignore[attr-defined]
        assert f"would destroy or replace the DynamoDB table(s) {table}" in str(refused.value)
        assert "nothing was applied" in str(refused.value)
    finally:
        m.state.update("import", table_spec=spec)  # type: ignore[attr-defined]
        m.state.mark_phase(3, "done")  # type: ignore[attr-defined]
    assert count_items(ddb, migrated["table"]) == before > 0  # type: ignore[arg-type]
    assert ddb.describe_table(TableName=migrated["table"])["Table"]["CreationDateTime"] == created


def test_a_new_import_prefix_plans_no_change(migrated: dict[str, object]) -> None:
    """import_table only acts when the table is created (ignore_changes): a new export never replaces it."""
    m = migrated["m"]
    spec = m.state.section("import")["table_spec"]  # type: ignore[attr-defined]
    moved = {**spec, "import": {**spec["import"], "key_prefix": "exports/elsewhere/data/"}}
    m.state.update("import", table_spec=moved)  # type: ignore[attr-defined]
    try:
        (plan,) = migrated["runner"].plan(3)  # type: ignore[attr-defined]
    finally:
        m.state.update("import", table_spec=spec)  # type: ignore[attr-defined]
    assert not plan.has_changes, plan.changes


class Recorder:
    """A reporter that keeps what phase 3 says, to show what an operator would read."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def heading(self, text: str) -> None:
        self.lines.append(f"== {text}")

    def done(self, text: str) -> None:
        self.lines.append(f"✓ {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"! {text}")

    def info(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def live(self) -> Iterator[Any]:
        with QuietReporter().live() as board:
            yield board

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        yield
        self.lines.append(f"✓ {text}")


@pytest.mark.parametrize("left_behind", ["tainted", "not in the state"])
def test_phase_3_rerun_recovers_a_table_an_interrupted_run_left_behind_without_replacing_it(
    migrated: dict[str, object], target: AccountSession, left_behind: str, tmp_path: Path
) -> None:
    """A Terraform wait that ran out taints the table; a killed run leaves it out of the state. Phase 3,
    run again (here after phase 4), untaints or adopts it, keeps every item, and ends with an empty plan."""
    m = migrated["m"]
    runner = migrated["runner"]
    ddb = target.client("dynamodb")
    before = count_items(ddb, migrated["table"])  # type: ignore[arg-type]
    created = ddb.describe_table(TableName=migrated["table"])["Table"]["CreationDateTime"]
    terraform = runner.terraform("target")  # type: ignore[attr-defined]
    if left_behind == "tainted":
        terraform._run(["taint", "-no-color", TABLE_ADDRESS])
        assert [r.tainted for r in terraform.resources() if r.address == TABLE_ADDRESS] == [True]
    else:
        terraform._run(["state", "rm", "-no-color", f"-backup={tmp_path / 'state.backup'}", TABLE_ADDRESS])
        assert TABLE_ADDRESS not in {r.address for r in terraform.resources()}
    recorder = Recorder()
    m.report = recorder  # type: ignore[attr-defined]
    try:
        runner.apply(3)  # type: ignore[attr-defined]
    finally:
        m.report = QuietReporter()  # type: ignore[attr-defined]
    print("\n".join(recorder.lines))  # what the operator read (shown with -s)
    said = "untainted" if left_behind == "tainted" else "adopted into the Terraform state"
    assert any(said in line for line in recorder.lines), recorder.lines
    assert [r.tainted for r in terraform.resources() if r.address == TABLE_ADDRESS] == [False]
    assert count_items(ddb, migrated["table"]) == before > 0  # type: ignore[arg-type]
    assert ddb.describe_table(TableName=migrated["table"])["Table"]["CreationDateTime"] == created
    (plan,) = runner.plan(3)  # type: ignore[attr-defined]
    assert not plan.has_changes, plan.changes
    assert m.state.phase_status(3) == "done"  # type: ignore[attr-defined]


def test_no_credentials_in_anything_the_migrator_wrote(migrated: dict[str, object]) -> None:
    m = migrated["m"]
    secrets: list[str] = [FAKE_KEY_ID, FAKE_SECRET]
    for session in (m.source, m.target):  # type: ignore[attr-defined]
        creds = session.credentials()
        secrets += [creds.access_key_id, creds.secret_access_key, creds.session_token or "unused-token"]
    scanned = 0
    for path in m.state_dir.rglob("*"):  # type: ignore[attr-defined]
        if path.is_symlink() or not path.is_file() or "providers" in path.parts:
            continue  # the provider binary is a symlink into the mirror
        content = path.read_bytes()
        scanned += 1
        for secret in secrets:
            assert secret.encode() not in content, f"a credential leaked into {path}"
    assert scanned > 5  # tfvars, plans, backend configs, the replicator zip
    s3 = m.state_s3()  # type: ignore[attr-defined]
    bucket = m.config.state_bucket  # type: ignore[attr-defined]
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    prefix = f"{m.config.state.prefix}/{m.config.migration}/"  # type: ignore[attr-defined]
    assert {f"{prefix}state.json", f"{prefix}source.tfstate", f"{prefix}target.tfstate"} <= set(keys)
    for key in keys:  # every object of the state bucket: documents and Terraform states
        content = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for secret in secrets:
            assert secret.encode() not in content, f"a credential leaked into s3://{bucket}/{key}"
