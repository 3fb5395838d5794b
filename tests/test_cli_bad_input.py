"""Bad input through the CLI: one clear sentence, a non-zero exit, no traceback, nothing changed."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.stub import Stubber
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.context import MigrationContext
from migrator.errors import MigratorError
from migrator.phases.export import start_or_resume_export
from migrator.phases.guards import check_identity
from migrator.phases.import_table import check_import
from migrator.state import MigrationState

from .conftest import make_table
from .support import migration, write_config

GOOD_YAML = {
    "migration": "cli-bad",
    "source": {"account_id": "222222222222", "region": "us-east-1", "table": "Orders"},
    "target": {"account_id": "111111111111", "region": "us-east-1"},
}


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def assert_one_sentence(result: Any, fragment: str, code: int | None = None) -> None:
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    text = result.stderr.strip().splitlines()[-1]  # progress lines may come first; the error is last
    assert text.startswith("error: "), result.stderr
    assert "\n" not in text, text
    assert fragment in text, text


def yaml_with(tmp_path: Path, mutate: Callable[[dict[str, Any]], None] | None = None, raw: str | None = None) -> Path:
    path = tmp_path / "migration.yaml"
    if raw is not None:
        path.write_text(raw)
        return path
    data = yaml.safe_load(yaml.safe_dump(GOOD_YAML))
    if mutate:
        mutate(data)
    path.write_text(yaml.safe_dump(data))
    return path


CONFIG_CASES: list[tuple[str, Callable[[dict[str, Any]], None] | None, str | None, str]] = [
    ("malformed yaml", None, "migration: [x\n", "is not valid YAML at line"),
    ("not a mapping", None, "- a\n", "must be a YAML mapping"),
    ("unknown key", lambda d: d.update(colour="blue"), None, "unknown key 'colour'"),
    ("missing field", lambda d: d["target"].pop("region"), None, "'target.region' is missing"),
    ("bad account id", lambda d: d["source"].update(account_id="12345678901"), None, "must be 12 digits"),
    ("unquoted account id", lambda d: d["source"].update(account_id=22222222222), None, "quoted string"),
    ("bad region", lambda d: d["target"].update(region="us-middle"), None, "does not look like an AWS region"),
    ("same table", lambda d: d["target"].update(account_id="222222222222"), None, "same table in the same account"),
    (
        "role of another account",
        lambda d: d["target"].update(role_arn="arn:aws:iam::222222222222:role/Ops"),
        None,
        "belongs to account 222222222222",
    ),
    ("bad migration name", lambda d: d.update(migration="Orders Move"), None, "'migration' must be"),
    ("bad endpoint", lambda d: d.update(endpoint_url="ftp://x"), None, "must be an http(s) URL"),
]


@pytest.mark.parametrize(("name", "mutate", "raw", "fragment"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_configuration_is_refused_before_any_aws_call(
    tmp_path: Path, name: str, mutate: Any, raw: str | None, fragment: str
) -> None:
    path = yaml_with(tmp_path, mutate, raw)
    result = run("apply", "--phase", "1", "--config", str(path))
    assert_one_sentence(result, fragment, code=2)
    assert not (tmp_path / ".migrator").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_sentence(run("status", "--config", str(tmp_path / "none.yaml")), "no configuration at", code=2)


def test_unknown_profile_is_one_sentence(tmp_path: Path) -> None:
    path = yaml_with(tmp_path, lambda d: d["target"].update(profile="no-such-profile"))
    assert_one_sentence(run("apply", "--phase", "1", "--config", str(path)), "profile 'no-such-profile'")


def test_replicate_without_local_says_what_to_do(tmp_path: Path) -> None:
    path = yaml_with(tmp_path)
    assert_one_sentence(run("replicate", "--config", str(path)), "only --local replication")


# Cases against the emulator: the source account's table in various bad shapes -------------------------
def _buckets(session: AccountSession) -> set[str]:
    return {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ("missing", "does not exist in account 222222222222"),
        ("no-stream", "has no stream; run phase 1 with --enable-stream"),
        ("keys-only", "stream has view KEYS_ONLY"),
        ("no-pitr", "point-in-time recovery is off"),
        ("lsi", "local secondary indexes (by-date)"),
    ],
)
def test_source_table_problems_refuse_phase_1_and_change_nothing(
    tmp_path: Path,
    moto_endpoint: str,
    source: AccountSession,
    target: AccountSession,
    unique: str,
    shape: str,
    fragment: str,
) -> None:
    table = f"Bad{unique}"
    if shape == "no-stream":
        make_table(source, table, stream=None)
    elif shape == "keys-only":
        make_table(source, table, stream="KEYS_ONLY")
    elif shape == "no-pitr":
        make_table(source, table, pitr=False)
    elif shape == "lsi":
        source.client("dynamodb").create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "d", "AttributeType": "S"},
            ],
            LocalSecondaryIndexes=[
                {
                    "IndexName": "by-date",
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "d", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    before = _buckets(target)
    cfg = write_config(tmp_path, moto_endpoint, f"bad-{unique}", table)
    result = run("apply", "--phase", "1", "--config", str(cfg))
    assert_one_sentence(result, fragment)
    assert _buckets(target) == before
    if shape == "no-stream":
        desc = source.client("dynamodb").describe_table(TableName=table)["Table"]
        assert not (desc.get("StreamSpecification") or {}).get("StreamEnabled")


def test_credentials_of_another_account_are_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Acct{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"acct-{unique}", table, source={"role_arn": None})
    before = _buckets(target)
    result = run("apply", "--phase", "1", "--config", str(cfg))
    assert_one_sentence(result, "belong to account 123456789012, not the configured source account 222222222222")
    assert _buckets(target) == before


def test_phase_out_of_order_is_refused(tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str) -> None:
    table = f"Ord{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"ord-{unique}", table)
    assert_one_sentence(
        run("apply", "--phase", "2", "--config", str(cfg)), "phase 2 (export) needs phase 1 (prepare) done first"
    )


def _fake_terraform(tmp_path: Path, version: str) -> Path:
    script = tmp_path / "terraform"
    script.write_text(f'#!/bin/sh\necho \'{{"terraform_version": "{version}"}}\'\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_terraform_older_than_required_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Old{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"old-{unique}", table)
    before = _buckets(target)
    result = run(
        "apply",
        "--phase",
        "1",
        "--config",
        str(cfg),
        env={"MIGRATOR_TERRAFORM": str(_fake_terraform(tmp_path, "1.2.9"))},
    )
    assert_one_sentence(result, "Terraform 1.2.9 is older than the required 1.10.0")
    assert _buckets(target) == before


@pytest.mark.terraform
def test_provider_that_cannot_be_installed_is_one_sentence(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Prov{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"prov-{unique}", table)
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    rc = tmp_path / "tf.rc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{empty}"\n  }}\n}}\n')
    before = _buckets(target)
    result = run("apply", "--phase", "1", "--config", str(cfg), env={"TF_CLI_CONFIG_FILE": str(rc)})
    assert_one_sentence(result, "terraform init failed")
    assert "provider" in result.stderr.lower()
    assert _buckets(target) == before
    assert os.environ["TF_CLI_CONFIG_FILE"] != str(rc)


# Names, ownership and failed data steps ---------------------------------------------------------------
def test_export_bucket_owned_by_another_account_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Bkt{unique}"
    make_table(source, table)
    cfg = write_config(tmp_path, moto_endpoint, f"bkt-{unique}", table, bucket=f"taken-{unique}")
    other = AccountSession(
        "333333333333", "us-east-1", "arn:aws:iam::333333333333:role/Ops", endpoint_url=moto_endpoint
    )
    other.client("s3").create_bucket(Bucket=f"taken-{unique}")
    result = run("apply", "--phase", "1", "--config", str(cfg))
    assert_one_sentence(result, f"the export bucket taken-{unique} already exists in another account")
    roles = {r["RoleName"] for r in target.client("iam").list_roles()["Roles"]}
    assert f"bkt-{unique}-writer" not in roles


def test_a_target_table_that_already_exists_is_refused_by_phase_1(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Clash{unique}"
    make_table(source, table)
    make_table(target, table, stream=None, pitr=False)
    cfg = write_config(tmp_path, moto_endpoint, f"clash-{unique}", table)
    before = _buckets(target)
    assert_one_sentence(
        run("apply", "--phase", "1", "--config", str(cfg)),
        f"a table named {table} already exists in the target account 111111111111",
    )
    assert _buckets(target) == before


def test_a_second_migration_with_the_same_name_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Dup{unique}"
    make_table(source, table)
    target.client("iam").create_role(RoleName=f"dup-{unique}-writer", AssumeRolePolicyDocument="{}")
    cfg = write_config(tmp_path, moto_endpoint, f"dup-{unique}", table)
    assert_one_sentence(
        run("apply", "--phase", "1", "--config", str(cfg)),
        f"a migration named 'dup-{unique}' already exists in the target account",
    )


def test_reusing_a_migration_name_for_another_table_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    make_table(source, f"One{unique}")
    make_table(source, f"Two{unique}")
    first = migration(write_config(tmp_path, moto_endpoint, f"same-{unique}", f"One{unique}"))
    first.state.replace("fingerprint", first.fingerprint())
    cfg = write_config(tmp_path, moto_endpoint, f"same-{unique}", f"Two{unique}")
    assert_one_sentence(run("apply", "--phase", "1", "--config", str(cfg)), "give this migration another name")


def test_failed_export_is_one_sentence_and_recorded(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    table = f"Exp{unique}"
    desc = make_table(source, table)
    m = migration(write_config(tmp_path, moto_endpoint, f"exp-{unique}", table, bucket=f"no-such-bucket-{unique}"))
    m.state.update(
        "stream", arn=desc["LatestStreamArn"], table_arn=desc["TableArn"], created_at="2000-01-01T00:00:00.000+00:00"
    )
    with pytest.raises(MigratorError, match=r"the export failed .*run phase 2 again to start a new export"):
        start_or_resume_export(m)
    assert m.state.section("export")["status"] == "FAILED"


def test_import_count_mismatch_is_refused(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"Cnt{unique}"
    make_table(source, table)
    make_table(target, table)
    target.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    m = migration(write_config(tmp_path, moto_endpoint, f"cnt-{unique}", table))
    m.state.update("export", item_count=2)
    with pytest.raises(MigratorError, match="the import holds 1 items but the export had 2"):
        check_import(m)


def _offline_migration(tmp_path: Path) -> MigrationContext:
    """A migration against 'real' AWS whose clients are stubbed: no network, no emulator (so its document is
    kept in a local file, not in a state bucket)."""
    path = yaml_with(tmp_path)
    m = migration(path)
    m.state = MigrationState(tmp_path / "document")
    return m


@pytest.mark.parametrize(
    ("status", "errors", "imported", "fragment"),
    [
        ("FAILED", 0, 0, "the import ended FAILED"),
        ("COMPLETED", 3, 7, "the import reported 3 item errors"),
        ("COMPLETED", 0, 9, "the import holds 9 items but the export had 10"),
    ],
)
def test_import_failures_are_refused(tmp_path: Path, status: str, errors: int, imported: int, fragment: str) -> None:
    m = _offline_migration(tmp_path)
    m.state.update("export", item_count=10)
    ddb = m.target.client("dynamodb")
    arn = "arn:aws:dynamodb:us-east-1:111111111111:table/Orders"
    import_arn = f"{arn}/import/01"
    with Stubber(ddb) as stub:
        stub.add_response("describe_table", {"Table": {"TableName": "Orders", "TableArn": arn}})
        stub.add_response("list_imports", {"ImportSummaryList": [{"ImportArn": import_arn, "TableArn": arn}]})
        stub.add_response(
            "describe_import",
            {
                "ImportTableDescription": {
                    "ImportArn": import_arn,
                    "ImportStatus": status,
                    "ErrorCount": errors,
                    "ImportedItemCount": imported,
                    "FailureMessage": "boom",
                }
            },
        )
        with pytest.raises(MigratorError, match=fragment):
            check_import(m)


def test_expired_credentials_are_one_sentence(tmp_path: Path) -> None:
    m = _offline_migration(tmp_path)
    sts = m.target.client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403)
        with pytest.raises(MigratorError, match="credentials for the target account have expired"):
            check_identity(m, "target")


class _FakeTerraform:
    """The part of TerraformRunner phase 3's reconcile uses: the state's resources, untaint, import."""

    def __init__(self, tainted: bool) -> None:
        from migrator.infra.terraform import StateResource
        from migrator.phases.import_table import TABLE_ADDRESS

        self.resources_now = [StateResource(TABLE_ADDRESS, "aws_dynamodb_table", tainted)]
        self.untainted: list[str] = []

    def resources(self) -> list[Any]:
        return self.resources_now

    def untaint(self, address: str) -> None:
        self.untainted.append(address)

    def import_resource(self, var_file: Path, address: str, resource_id: str) -> None:
        raise AssertionError("the table is in the state: nothing to import")


def _import_in_progress_then(stub: Stubber, arn: str, final: dict[str, Any]) -> None:
    table_arn = "arn:aws:dynamodb:us-east-1:111111111111:table/Orders"
    stub.add_response("describe_table", {"Table": {"TableName": "Orders", "TableArn": table_arn}})
    stub.add_response(
        "list_imports",
        {"ImportSummaryList": [{"ImportArn": arn, "TableArn": table_arn, "ImportStatus": "IN_PROGRESS"}]},
    )
    stub.add_response("describe_import", {"ImportTableDescription": {"ImportArn": arn, "ImportStatus": "IN_PROGRESS"}})
    stub.add_response(
        "describe_import",
        {"ImportTableDescription": {"ImportArn": arn, "ImportStatus": "IN_PROGRESS", "ProcessedItemCount": 5}},
    )
    stub.add_response("describe_import", {"ImportTableDescription": {"ImportArn": arn, **final}})


def test_phase_3_waits_for_an_import_that_outlasted_terraform_then_untaints_the_table(tmp_path: Path) -> None:
    from migrator.phases.import_table import TABLE_ADDRESS, reconcile_table

    m = _offline_migration(tmp_path)
    m.waits.import_poll_s = 0.0
    terraform = _FakeTerraform(tainted=True)
    arn = "arn:aws:dynamodb:us-east-1:111111111111:table/Orders/import/01"
    with Stubber(m.target.client("dynamodb")) as stub:
        _import_in_progress_then(stub, arn, {"ImportStatus": "COMPLETED", "ImportedItemCount": 9})
        reconcile_table(m, terraform, tmp_path / "vars.json")  # type: ignore[arg-type]
        stub.assert_no_pending_responses()
    assert terraform.untainted == [TABLE_ADDRESS]
    assert m.state.section("import")["arn"] == arn


def test_phase_3_reports_an_import_that_failed_with_its_code_and_message_and_leaves_the_taint(tmp_path: Path) -> None:
    from migrator.phases.import_table import reconcile_table

    m = _offline_migration(tmp_path)
    m.waits.import_poll_s = 0.0
    terraform = _FakeTerraform(tainted=True)
    arn = "arn:aws:dynamodb:us-east-1:111111111111:table/Orders/import/02"
    final = {"ImportStatus": "FAILED", "FailureCode": "InvalidJson", "FailureMessage": "line 7 is not JSON"}
    with Stubber(m.target.client("dynamodb")) as stub:
        _import_in_progress_then(stub, arn, final)
        with pytest.raises(MigratorError, match=r"the import ended FAILED \(InvalidJson: line 7 is not JSON\)"):
            reconcile_table(m, terraform, tmp_path / "vars.json")  # type: ignore[arg-type]
    assert terraform.untainted == []
