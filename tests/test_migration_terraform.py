"""Real Terraform and provider against the emulator, in two accounts, through the migrator's phases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.aws import AccountSession
from migrator.errors import MigratorError

from .conftest import SOURCE_ACCOUNT, TARGET_ACCOUNT, make_table
from .support import fill, migration, write_config

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> dict[str, object]:
    """One migration taken through phases 1–4 (shared by the checks below: Terraform is slow)."""
    tmp = tmp_path_factory.mktemp("tf")
    source = AccountSession(SOURCE_ACCOUNT, "us-east-1", f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops",
                            endpoint_url=moto_endpoint)
    table = "TfOrders"
    make_table(source, table)
    fill(source.client("dynamodb"), table, 120)
    cfg = write_config(tmp, moto_endpoint, "tf-roots", table)
    m = migration(cfg)
    m.apply(1)
    m.apply(2)
    mapping_after_2 = m.source.client("lambda").get_event_source_mapping(
        UUID=m.state.section("source_outputs")["event_source_mapping_uuid"])["State"]
    m.apply(3)
    m.apply(4)
    return {"m": m, "config": cfg, "table": table, "mapping_after_2": mapping_after_2}


def test_export_bucket_lives_in_the_target_account_with_its_policy(migrated: dict[str, object],
                                                                   target: AccountSession,
                                                                   source: AccountSession) -> None:
    m = migrated["m"]
    bucket = m.config.bucket_name  # type: ignore[attr-defined]
    s3 = target.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    statements = policy["Statement"]
    denies_plain_http = [s for s in statements if s["Effect"] == "Deny"
                         and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))]
    assert denies_plain_http
    writers = [s for s in statements if s["Effect"] == "Allow"]
    assert all(f"arn:aws:iam::{SOURCE_ACCOUNT}:root" in json.dumps(s["Principal"]) for s in writers)
    actions = {a for s in writers for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:PutObject" in actions and "s3:*" not in actions
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    buckets = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    assert bucket in buckets


def test_writer_role_trusts_only_the_replicator_with_external_id(migrated: dict[str, object],
                                                                 target: AccountSession) -> None:
    m = migrated["m"]
    role = target.client("iam").get_role(RoleName=m.config.writer_role_name)["Role"]  # type: ignore[attr-defined]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    text = json.dumps(trust)
    assert m.config.writer_external_id in text  # type: ignore[attr-defined]
    assert m.config.replicator_role_arn in text  # type: ignore[attr-defined]
    policies = target.client("iam").list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    docs = [target.client("iam").get_role_policy(RoleName=role["RoleName"], PolicyName=p)["PolicyDocument"]
            for p in policies]
    body = json.dumps(docs)
    assert f"table/{migrated['table']}" in body
    assert '"*"' not in body and "dynamodb:*" not in body


def test_target_table_holds_the_imported_items(migrated: dict[str, object], target: AccountSession) -> None:
    ddb = target.client("dynamodb")
    desc = ddb.describe_table(TableName=migrated["table"])["Table"]
    assert desc["TableArn"].split(":")[4] == TARGET_ACCOUNT
    count = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName=migrated["table"], Select="COUNT"))
    assert count == 120
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
    m = migrated["m"]
    for number in (3, 4):
        report = m.plan(number)  # type: ignore[attr-defined]
        assert not report.has_changes, report.changes


def test_phase_state_is_recorded(migrated: dict[str, object]) -> None:
    m = migrated["m"]
    state = json.loads((m.state_dir / "state.json").read_text())  # type: ignore[attr-defined]
    assert [state["phases"][str(n)]["status"] for n in (1, 2, 3, 4)] == ["done"] * 4
    assert state["export"]["status"] == "COMPLETED" and state["export"]["data_prefix"].endswith("/data/")
    assert state["import"]["imported"] == 120


def test_table_replacement_is_refused_and_the_table_survives(migrated: dict[str, object],
                                                              target: AccountSession) -> None:
    m = migrated["m"]
    spec = m.state.section("import")["table_spec"]  # type: ignore[attr-defined]
    original = dict(spec)
    spec["range_key"] = None  # a key change forces replacement
    spec["attributes"] = [a for a in spec["attributes"] if a["name"] != "sk"]
    m.state.save()  # type: ignore[attr-defined]
    try:
        with pytest.raises(MigratorError, match="destroy|replace"):
            m.apply(3)  # type: ignore[attr-defined]
    finally:
        spec.clear()
        spec.update(original)
        m.state.mark_phase(3, "done")  # type: ignore[attr-defined]
    assert target.client("dynamodb").describe_table(TableName=migrated["table"])["Table"]["ItemCount"] >= 0


def test_wrong_account_is_refused_before_any_change(tmp_path: Path, moto_endpoint: str,
                                                    source: AccountSession, target: AccountSession) -> None:
    table = "WrongAcct"
    make_table(source, table)
    # No role: the fake base credentials land in the emulator's default account 123456789012.
    cfg = write_config(tmp_path, moto_endpoint, "wrong-acct", table,
                       target={"role_arn": None})
    m = migration(cfg)
    with pytest.raises(MigratorError, match="belong to account 123456789012, not the configured target account"):
        m.apply(1)
    names = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    assert m.config.bucket_name not in names
    assert not (m.state_dir / "terraform").exists()


def test_phases_run_in_order(tmp_path: Path, moto_endpoint: str, source: AccountSession) -> None:
    table = "OrderCheck"
    make_table(source, table)
    m = migration(write_config(tmp_path, moto_endpoint, "order-check", table))
    with pytest.raises(MigratorError, match="phase 3 \\(import\\) needs phase 1 \\(prepare\\) done first"):
        m.apply(3)
