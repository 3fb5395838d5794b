"""Real Terraform against the emulator, the end of a migration's life on one migration: phase 5 deploys the way
back disabled, phase 6 removes the machinery of the migration in both accounts and keeps both tables, and the
handover writes the target table out as the application's Terraform (it imports with nothing to add, change or
destroy) and leaves migrator's target workspace without it.

Its own migration (``fb-cleanup``) and tables, so it shares the session's emulator with the other modules
without clashing. The tests run in the order written: the handover follows the cleanup (the ``handed``
fixture makes the cutover and the cleanup itself when run alone). The cleanup test records the cutover in the
document and flips the mappings through the Lambda API, as `migrator cutover` does, to check cleanup's
refusal before it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from migrator.aws.dynamodb import count_items
from migrator.aws.session import AccountSession
from migrator.context import MigrationContext
from migrator.dev.demo import fill
from migrator.errors import MigratorError
from migrator.infra.plan import resource_changes
from migrator.infra.terraform import TerraformRunner, child_env
from migrator.phases import CLEANUP, FALLBACK, IMPORT, ApplyOptions
from migrator.phases.import_table import TABLE_ADDRESS
from migrator.phases.runner import PhaseRunner
from migrator.readmodels.status import collect_status

from .conftest import REGION, SOURCE_ACCOUNT, TARGET_ACCOUNT, make_table
from .support import cli, migration, write_config

pytestmark = [pytest.mark.terraform, pytest.mark.whole_migration]

TABLE = "FbOrders"
ITEMS = 40


@pytest.fixture(scope="module")
def fallen_back(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> dict[str, Any]:
    """Phases 1–5 of a small migration (no live writes: phase 4's catch-up is not what is tested here)."""
    directory = tmp_path_factory.mktemp("fallback")
    source = AccountSession(
        SOURCE_ACCOUNT, "us-east-1", f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops", endpoint_url=moto_endpoint
    )
    make_table(source, TABLE)
    fill(source.client("dynamodb"), ITEMS, random.Random(11), table=TABLE)
    m = migration(write_config(directory, moto_endpoint, "fb-cleanup", TABLE))
    runner = PhaseRunner(m)
    for number in range(1, FALLBACK.number + 1):
        runner.apply(number)
    return {"m": m, "runner": runner, "directory": directory}


def _m(fallen_back: dict[str, Any]) -> MigrationContext:
    m = fallen_back["m"]
    assert isinstance(m, MigrationContext)
    return m


def gone(call: Callable[..., Any], **kwargs: Any) -> bool:
    """True when ``call(**kwargs)`` answers that its resource does not exist."""
    try:
        call(**kwargs)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        return code in ("ResourceNotFoundException", "NoSuchEntity", "404", "NoSuchBucket", "NotFound")
    return False


def test_the_way_back_is_deployed_disabled_on_the_target_tables_stream(
    fallen_back: dict[str, Any], target: AccountSession
) -> None:
    m = _m(fallen_back)
    outputs = m.state.section("target_outputs")
    mapping = target.client("lambda").get_event_source_mapping(UUID=outputs["reverse_event_source_mapping_uuid"])
    assert mapping["State"] == "Disabled"
    assert mapping["EventSourceArn"] == outputs["table_stream_arn"]  # the target table's stream
    assert mapping["EventSourceArn"].split(":")[4] == TARGET_ACCOUNT
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert outputs["reverse_replicator_function_name"] == m.config.reverse_replicator_name
    assert outputs["reverse_failure_bucket_name"] == m.config.reverse_failure_bucket_name
    assert outputs["reverse_log_group_name"] == f"/aws/lambda/{m.config.reverse_replicator_name}"
    assert outputs["reverse_iterator_age_alarm_name"] == f"{m.config.reverse_replicator_name}-iterator-age"
    env = target.client("lambda").get_function_configuration(FunctionName=m.config.reverse_replicator_name)
    variables = env["Environment"]["Variables"]
    assert (variables["TARGET_TABLE"], variables["WRITER_ROLE_ARN"], variables["EXTERNAL_ID"]) == (
        TABLE,
        m.config.reverse_writer_role_arn,
        m.config.reverse_external_id,
    )
    # the forward mapping is still the enabled one (invariant 9)
    forward = m.state.section("source_outputs")["event_source_mapping_uuid"]
    assert m.source.client("lambda").get_event_source_mapping(UUID=forward)["State"] == "Enabled"


def test_the_reverse_writer_role_trusts_only_the_reverse_replicator_and_may_only_write_the_source_table(
    fallen_back: dict[str, Any], source: AccountSession
) -> None:
    m = _m(fallen_back)
    c = m.config
    iam = source.client("iam")
    role = iam.get_role(RoleName=c.reverse_writer_role_name)["Role"]
    assert role["Arn"] == m.state.section("source_outputs")["reverse_writer_role_arn"] == c.reverse_writer_role_arn
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{TARGET_ACCOUNT}:root"}
    assert statement["Condition"]["ArnEquals"]["aws:PrincipalArn"] == c.reverse_replicator_role_arn
    assert statement["Condition"]["StringEquals"]["sts:ExternalId"] == c.reverse_external_id
    (name,) = iam.list_role_policies(RoleName=c.reverse_writer_role_name)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=c.reverse_writer_role_name, PolicyName=name)["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    (write,) = policy["Statement"]
    assert write["Resource"] == f"arn:aws:dynamodb:us-east-1:{SOURCE_ACCOUNT}:table/{TABLE}"
    assert sorted(write["Action"]) == [
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
        "dynamodb:PutItem",
    ]


def test_replanning_phase_5_shows_no_change_and_status_shows_it_done(fallen_back: dict[str, Any]) -> None:
    m = _m(fallen_back)
    reports = fallen_back["runner"].plan(FALLBACK.number)
    assert [r.root for r in reports] == ["source", "target"]
    assert all(not r.has_changes for r in reports), [r.changes for r in reports]
    status = collect_status(m)
    assert [(p["phase"], p["status"]) for p in status["phases"]][4:] == [(5, "done"), (6, "not started")]
    assert status["replicator"]["reverse_mapping"] == "Disabled"


def test_cleanup_after_a_final_cutover_removes_the_machinery_in_both_accounts_and_keeps_both_tables(
    fallen_back: dict[str, Any], source: AccountSession, target: AccountSession
) -> None:
    m = _m(fallen_back)
    c = m.config
    runner: PhaseRunner = fallen_back["runner"]

    # Before a cutover: refused, nothing changed.
    before = m.state.data
    with pytest.raises(MigratorError, match="never cut over"):
        runner.apply(CLEANUP.number)
    assert m.state.data == before

    forward, reverse = cut_over(m, source, target)
    # Terraform follows the record: after the flip, the plans of phases 4 and 5 are empty.
    changes = [a for r in runner.plan(4) + runner.plan(FALLBACK.number) for _, a in r.changes]
    assert changes == []

    # A failure record waiting: refused, naming the bucket.
    s3 = source.client("s3")
    key = "aws/lambda/x/shardId-0001/2026/01/01/2026-01-01T00.00.00-abc"
    s3.put_object(Bucket=c.failure_bucket_name, Key=key, Body=b"{}")
    with pytest.raises(MigratorError, match=f"wait in s3://{c.failure_bucket_name}.*`migrator redrive`"):
        runner.apply(CLEANUP.number)
    assert m.state.phase_status(CLEANUP.number) == "not started"

    # Redriven (moved under redriven/, as redrive does): cleanup applies.
    s3.copy_object(
        Bucket=c.failure_bucket_name, Key="redriven/" + key, CopySource={"Bucket": c.failure_bucket_name, "Key": key}
    )
    s3.delete_object(Bucket=c.failure_bucket_name, Key=key)
    runner.apply(CLEANUP.number)
    assert m.state.phase_status(CLEANUP.number) == "done"

    for session, function in ((source, c.replicator_name), (target, c.reverse_replicator_name)):
        lam = session.client("lambda")
        assert gone(lam.get_function, FunctionName=function), function
        assert not any(
            x["FunctionArn"].endswith(f":{function}") for x in lam.list_event_source_mappings()["EventSourceMappings"]
        )
        alarms = session.client("cloudwatch").describe_alarms(AlarmNamePrefix=function)["MetricAlarms"]
        assert alarms == [], alarms
        groups = session.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function}")
        assert groups["logGroups"] == []
        assert gone(session.client("iam").get_role, RoleName=function), function  # the execution roles
    assert gone(source.client("lambda").get_event_source_mapping, UUID=forward)
    assert gone(target.client("lambda").get_event_source_mapping, UUID=reverse)
    assert gone(target.client("iam").get_role, RoleName=c.writer_role_name)
    assert gone(source.client("iam").get_role, RoleName=c.reverse_writer_role_name)
    assert gone(target.client("s3").head_bucket, Bucket=c.bucket_name)
    assert gone(source.client("s3").head_bucket, Bucket=c.failure_bucket_name)
    assert gone(target.client("s3").head_bucket, Bucket=c.reverse_failure_bucket_name)

    # Both tables stay, with their items.
    source_items = count_items(source.client("dynamodb"), TABLE)
    assert source_items == count_items(target.client("dynamodb"), c.target_table_name) > 0

    recorded = m.state.section("cleanup")
    assert recorded["abandoned"] is False
    assert "module.replicator[0].aws_lambda_function.this" in recorded["removed"]["source"]
    assert "module.reverse_writer_role[0].aws_iam_role.this" in recorded["removed"]["source"]
    assert "module.reverse_replicator[0].aws_lambda_event_source_mapping.this" in recorded["removed"]["target"]
    assert "module.export_bucket[0].aws_s3_bucket.this" in recorded["removed"]["target"]
    assert not any("target_table" in a for a in recorded["removed"]["target"])
    left = recorded["left"]
    assert left["source_table"]["stream_arn"] and left["source_table"]["pitr"] == "ENABLED"
    assert left["target_table"]["arn"].split(":")[4] == TARGET_ACCOUNT
    outputs = m.state.section("target_outputs")
    assert outputs["reverse_event_source_mapping_uuid"] is None and outputs["export_bucket_name"] is None
    assert outputs["table_name"] == c.target_table_name
    assert m.state.section("source_outputs")["reverse_writer_role_arn"] is None

    # A second plan of phase 6 is empty.
    assert not any(r.has_changes for r in runner.plan(CLEANUP.number))
    status = collect_status(m)
    assert [p["status"] for p in status["phases"]][4:] == ["done", "done"]
    assert status["replicator"]["mapping"] == "absent" and status["replicator"]["reverse_mapping"] == "absent"


def cut_over(m: MigrationContext, source: AccountSession, target: AccountSession) -> tuple[str, str]:
    """The cutover as `migrator cutover` makes it (forward off, reverse on, recorded); the mappings' UUIDs."""
    forward = m.state.section("source_outputs")["event_source_mapping_uuid"]
    reverse = m.state.section("target_outputs")["reverse_event_source_mapping_uuid"]
    source.client("lambda").update_event_source_mapping(UUID=forward, Enabled=False)
    target.client("lambda").update_event_source_mapping(UUID=reverse, Enabled=True)
    m.state.replace(
        "cutover",
        {"direction": "reverse", "history": [{"action": "cutover", "at": "2026-01-01T00:00:00Z", "by": "test@host"}]},
    )
    return forward, reverse


def test_abandon_is_no_option_of_the_other_phases(fallen_back: dict[str, Any]) -> None:
    with pytest.raises(MigratorError, match="--abandon belongs to phase 6"):
        fallen_back["runner"].apply(FALLBACK.number, ApplyOptions(abandon=True))


# The handover, after the cleanup, with the real Terraform against the emulator -----------------------------
APP_PROVIDER = """provider "aws" {{
  region                  = "{region}"
  allowed_account_ids     = ["{account}"]
  skip_metadata_api_check = true

  endpoints {{
    dynamodb = "{endpoint}"
    sts      = "{endpoint}"
  }}
}}
"""


def plan_counts(plan_json: dict[str, Any]) -> dict[str, int]:
    changes = plan_json.get("resource_changes") or []
    actions = [set(rc["change"]["actions"]) for rc in changes]
    return {
        "import": sum(1 for rc in changes if rc["change"].get("importing")),
        "add": sum(1 for a in actions if "create" in a),
        "change": sum(1 for a in actions if "update" in a),
        "destroy": sum(1 for a in actions if "delete" in a),
    }


@pytest.fixture(scope="module")
def handed(fallen_back: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> dict[str, Any]:
    """The handover of this migration once every phase is done (the cleanup test above applies phase 6; alone,
    this fixture makes the cutover and the cleanup itself), then the application's own root and a destroy of
    migrator's target workspace."""
    tmp = tmp_path_factory.mktemp("handover")
    m = _m(fallen_back)
    table = m.config.target_table_name
    source = AccountSession(
        SOURCE_ACCOUNT, REGION, f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops", endpoint_url=moto_endpoint
    )
    target = AccountSession(
        TARGET_ACCOUNT, REGION, f"arn:aws:iam::{TARGET_ACCOUNT}:role/Ops", endpoint_url=moto_endpoint
    )
    if not CLEANUP.done(m):
        cut_over(m, source, target)
        fallen_back["runner"].apply(CLEANUP.number)
    work = fallen_back["directory"]
    config = work / "migration.yaml"
    before_tf = PhaseRunner(migration(config)).terraform("target")
    in_state_before = [r.address for r in before_tf.resources()]
    out = tmp / "handover"
    first = cli(work, "handover", "--address", "aws_dynamodb_table.orders", "--out", str(out))
    second = cli(work, "handover", "--address", "aws_dynamodb_table.orders", "--out", str(tmp / "again"))

    # The application's own root: only a provider block, the target account's credentials in the child only.
    app_root = tmp / "app"
    app_root.mkdir()
    (app_root / "providers.tf").write_text(
        APP_PROVIDER.format(region=REGION, account=TARGET_ACCOUNT, endpoint=moto_endpoint), encoding="utf-8"
    )
    written = sorted(out.iterdir()) if out.is_dir() else []
    for path in written:
        (app_root / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    data_dir = tmp / "app-data"
    app_tf = TerraformRunner(root=app_root, data_dir=data_dir, env=child_env(target.credentials().as_env(), data_dir))
    no_vars = tmp / "none.tfvars.json"
    no_vars.write_text("{}", encoding="utf-8")
    app_tf.init()
    first_plan = app_tf.plan(no_vars, tmp / "app-1.tfplan")
    first_json = app_tf.show(first_plan.plan_file)
    app_tf.apply(first_plan.plan_file)
    second_plan = app_tf.plan(no_vars, tmp / "app-2.tfplan")

    # migrator's target workspace afterwards: a plan there plans nothing; its destroy keeps the table.
    after = migration(config)
    after_runner = PhaseRunner(after)
    (migrator_plan,) = after_runner.plan(IMPORT.number)
    tf = after_runner.terraform("target")
    in_state = [r.address for r in tf.resources()]
    var_file = after_runner.tfvars(IMPORT, "target")
    destroy = tf.plan(var_file, tmp / "destroy.tfplan", destroy=True)
    destroy_json = tf.show(destroy.plan_file) if destroy.has_changes else {}
    tf.apply(destroy.plan_file)
    ddb = target.client("dynamodb")
    return {
        "m": after,
        "table": table,
        "first": first,
        "second": second,
        "written": written,
        "first_plan": first_json,
        "second_plan": second_plan,
        "migrator_plan": migrator_plan,
        "in_state_before": in_state_before,
        "in_state": in_state,
        "destroy_plan": destroy_json,
        "after_destroy": [r.address for r in tf.resources()],
        "table_after": ddb.describe_table(TableName=table)["Table"],
        "items_after": count_items(ddb, table),
        "items_source": count_items(source.client("dynamodb"), m.config.source_table_name),
    }


@pytest.mark.terraform
def test_handover_writes_one_file_and_says_what_to_do_next(handed: dict[str, Any]) -> None:
    first = handed["first"]
    assert first.returncode == 0, first.stderr
    assert [p.name for p in handed["written"]] == [f"{handed['table']}.tf"]
    text = handed["written"][0].read_text(encoding="utf-8")
    assert f'import {{\n  to = aws_dynamodb_table.orders\n  id = "{handed["table"]}"\n}}' in text
    assert "import_table" not in text
    lines = [ln for ln in first.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("next: commit ") and "1 to import" in lines[-1]


@pytest.mark.terraform
def test_the_written_file_imports_with_nothing_to_add_change_or_destroy(handed: dict[str, Any]) -> None:
    assert plan_counts(handed["first_plan"]) == {"import": 1, "add": 0, "change": 0, "destroy": 0}
    (change,) = handed["first_plan"]["resource_changes"]
    assert change["address"] == "aws_dynamodb_table.orders" and change["change"]["actions"] == ["no-op"]
    assert not handed["second_plan"].has_changes, handed["second_plan"].text  # empty after the apply


@pytest.mark.terraform
def test_the_table_left_migrators_state_and_its_variable(handed: dict[str, Any]) -> None:
    m = handed["m"]
    record = m.state.section("handover")
    assert record["address"] == "aws_dynamodb_table.orders" and record["table"] == handed["table"]
    assert record["file"] == str(handed["written"][0].resolve()) and record["at"] and "@" in record["by"]
    assert TABLE_ADDRESS not in handed["in_state"]
    assert TABLE_ADDRESS in handed["in_state_before"]  # it was there until the handover
    # After the cleanup and the handover nothing is left to plan in migrator's target workspace: not the table
    # (its outputs only become null: count = 0), not the machinery (cleanup removed it).
    report = handed["migrator_plan"]
    assert not [a for _, a in report.changes if "target_table" in a or "aws_dynamodb_table" in a], report.changes
    assert report.changes == [], report.changes
    assert m.lock.holder() is None


@pytest.mark.terraform
def test_a_second_handover_is_refused(handed: dict[str, Any]) -> None:
    second = handed["second"]
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "was already handed over at" in second.stderr.replace("\n", " ")


@pytest.mark.terraform
def test_destroying_migrators_target_workspace_leaves_the_table_and_its_items(handed: dict[str, Any]) -> None:
    # The table was in the workspace before the handover, so a destroy would have deleted it (deletion
    # protection aside); after it, a destroy of the whole workspace plans no table.
    assert TABLE_ADDRESS in handed["in_state_before"]
    destroyed = [rc for rc in resource_changes(handed["destroy_plan"]) if "delete" in rc.actions]
    assert not [rc for rc in destroyed if rc.type == "aws_dynamodb_table"]
    assert handed["after_destroy"] == []
    assert handed["table_after"]["TableStatus"] == "ACTIVE"
    assert handed["items_after"] == handed["items_source"] >= ITEMS
