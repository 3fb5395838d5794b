"""Pure pieces: phases, argument building, plan analysis, rendering, table spec, export-time checks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from migrator.config import parse_config
from migrator.errors import MigratorError
from migrator.infra.package import build_zip_bytes
from migrator.infra.plan import count_changes, destructive_table_changes
from migrator.infra.render import render
from migrator.infra.terraform import (
    ResourceTime,
    apply_args,
    child_env,
    init_args,
    parse_duration,
    parse_version,
    plan_args,
    resource_times,
    summarise_error,
    workspace_args,
)
from migrator.phases import PHASES, phase
from migrator.phases.export import validate_export_time
from migrator.phases.import_table import table_spec
from migrator.phases.prepare import check_source_shape, stream_problem

from .test_config import GOOD


def test_phases_are_declared_in_order_with_their_accounts() -> None:
    assert [(p.number, p.name, p.roots) for p in PHASES] == [
        (1, "prepare", ("target",)),
        (2, "export", ("source",)),
        (3, "import", ("target",)),
        (4, "replicate", ("source",)),
        (5, "fallback", ("source", "target")),
        (6, "cleanup", ("source", "target")),
    ]
    # every account a phase applies Terraform in is one whose identity it checks first
    assert all(set(p.roots) <= set(p.accounts) for p in PHASES)
    assert phase(1).accounts == ("target", "source")  # the preflight reads the source table
    with pytest.raises(MigratorError, match="there is no phase 9"):
        phase(9)


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (
            init_args(["/c/backend.tfbackend"]),
            ["init", "-input=false", "-no-color", "-reconfigure", "-backend-config=/c/backend.tfbackend"],
        ),
        (workspace_args("orders"), ["workspace", "select", "-or-create=true", "-no-color", "orders"]),
        (
            plan_args(Path("v.json"), Path("p.tfplan")),
            [
                "plan",
                "-input=false",
                "-no-color",
                "-detailed-exitcode",
                "-lock-timeout=60s",
                "-var-file=v.json",
                "-out=p.tfplan",
            ],
        ),
        (
            apply_args(Path("p.tfplan")),
            ["apply", "-input=false", "-no-color", "-auto-approve", "-lock-timeout=60s", "p.tfplan"],
        ),
    ],
)
def test_terraform_arguments(built: list[str], expected: list[str]) -> None:
    assert built == expected


def test_apply_only_ever_applies_a_saved_plan() -> None:
    args = apply_args(Path("p.tfplan"))
    assert args[-1] == "p.tfplan"
    assert not any(a.startswith("-var") for a in args)


@pytest.mark.parametrize(("text", "version"), [("Terraform v1.11.4", (1, 11, 4)), ("1.5.0", (1, 5, 0))])
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


def test_child_env_holds_only_passthrough_and_given_credentials() -> None:
    base = {
        "PATH": "/bin",
        "AWS_ACCESS_KEY_ID": "operator-key",
        "AWS_SESSION_TOKEN": "operator-token",
        "AWS_PROFILE": "prod",
        "AWS_CA_BUNDLE": "/etc/ca.pem",
        "SECRET_THING": "x",
    }
    env = child_env({"AWS_ACCESS_KEY_ID": "phase-key"}, Path("/d"), base)
    assert env["AWS_ACCESS_KEY_ID"] == "phase-key"
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_CA_BUNDLE"] == "/etc/ca.pem"  # a CA to trust (the emulator's), the one AWS_ variable kept
    assert sorted(k for k in env if k.startswith("AWS_")) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_CA_BUNDLE",
        "AWS_EC2_METADATA_DISABLED",
    ]
    assert "SECRET_THING" not in env
    assert env["TF_DATA_DIR"] == "/d"


def _plan(*changes: tuple[str, str, list[str]]) -> dict[str, Any]:
    return {"resource_changes": [{"address": a, "type": t, "change": {"actions": acts}} for a, t, acts in changes]}


@pytest.mark.parametrize(
    ("actions", "destructive"),
    [
        (["delete", "create"], True),
        (["create", "delete"], True),
        (["delete"], True),
        (["update"], False),
        (["create"], False),
        (["no-op"], False),
    ],
)
def test_table_guard_spots_destroy_and_replace(actions: list[str], destructive: bool) -> None:
    plan = _plan(
        ("module.t.aws_dynamodb_table.this", "aws_dynamodb_table", actions),
        ("aws_s3_bucket.b", "aws_s3_bucket", ["delete"]),
    )
    assert bool(destructive_table_changes(plan)) is destructive


def test_count_changes() -> None:
    plan = _plan(
        ("a", "x", ["create"]),
        ("b", "x", ["update"]),
        ("c", "x", ["delete", "create"]),
        ("d", "x", ["delete"]),
        ("e", "x", ["no-op"]),
    )
    assert count_changes(plan) == {"add": 1, "change": 1, "replace": 1, "destroy": 1}


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0.0), ("55s", 55.0), ("1m5s", 65.0), ("1h0m2s", 3602.0), ("1.5s", 1.5)]
)
def test_terraform_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_an_applys_output_says_how_long_each_resource_took() -> None:
    output = """module.b[0].aws_s3_bucket.this: Creating...
module.b[0].aws_s3_bucket.this: Creation complete after 1s [id=bucket-1]
module.b[0].aws_s3_bucket_lifecycle_configuration.this: Still creating... [50s elapsed]
module.b[0].aws_s3_bucket_lifecycle_configuration.this: Creation complete after 55s [id=bucket-1]
module.r[0].aws_lambda_event_source_mapping.this: Modifications complete after 2m3s [id=abc]
module.r[0].aws_iam_role.this["x: y"]: Destruction complete after 0s
data.aws_caller_identity.this: Read complete after 0s [id=111111111111]

Apply complete! Resources: 2 added, 1 changed, 1 destroyed.
"""
    assert resource_times(output) == [
        ResourceTime("module.b[0].aws_s3_bucket.this", "created", 1.0),
        ResourceTime("module.b[0].aws_s3_bucket_lifecycle_configuration.this", "created", 55.0),
        ResourceTime("module.r[0].aws_lambda_event_source_mapping.this", "modified", 123.0),
        ResourceTime('module.r[0].aws_iam_role.this["x: y"]', "destroyed", 0.0),
        ResourceTime("data.aws_caller_identity.this", "read", 0.0),
    ]


def test_summarise_error_keeps_the_error_line() -> None:
    text = "noise\n╷\n│ Error: AccessDenied\n│ \n│ with aws_s3_bucket.this\n╵\n"
    assert summarise_error(text).startswith("Error: AccessDenied")


def test_rendered_tfvars_are_json_and_carry_no_endpoint_for_real_runs() -> None:
    ctx = {
        "migration": "m",
        "source": {"account_id": "222222222222", "region": "us-east-1"},
        "target": {"account_id": "111111111111", "region": "us-east-1"},
        "endpoint_url": None,
        "target_table_name": "T",
        "export_bucket": {"name": "b"},
        "writer_role": {"name": "w"},
        "table": None,
    }
    data = render("target.tfvars.json.j2", ctx)
    assert "endpoint_url" not in data
    assert data["table"] is None
    with_endpoint = render("target.tfvars.json.j2", {**ctx, "endpoint_url": "http://127.0.0.1:5000"})
    assert with_endpoint["endpoint_url"] == "http://127.0.0.1:5000"


def test_rendering_with_a_missing_value_fails_loudly() -> None:
    with pytest.raises(MigratorError, match="needs a value that is missing"):
        render("source.tfvars.json.j2", {"migration": "m"})


def test_values_with_quotes_stay_valid_json() -> None:
    ctx = {
        "migration": 'a"b',
        "source": {"account_id": "222222222222", "region": "us-east-1"},
        "target": {"account_id": "1", "region": "r"},
        "endpoint_url": None,
        "source_table": {"n": "</x>"},
        "replicator": {},
    }
    assert render("source.tfvars.json.j2", ctx)["migration"] == 'a"b'


def test_lambda_zip_is_deterministic_and_holds_only_the_replicator() -> None:
    import zipfile
    from io import BytesIO

    first, second = build_zip_bytes(), build_zip_bytes()
    assert first == second
    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert "replicator/handler.py" in names
    assert all(n.startswith("replicator/") for n in names)


SOURCE_DESC: dict[str, Any] = {
    "TableName": "Orders",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "g", "AttributeType": "N"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by-g",
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]},
        }
    ],
    "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    "LatestStreamArn": "arn:aws:dynamodb:us-east-1:222222222222:table/Orders/stream/2026-01-01T00:00:00.000",
}


def test_table_spec_derives_keys_indexes_and_import() -> None:
    spec = table_spec(
        SOURCE_DESC,
        parse_config(GOOD),
        ttl_attribute="expires",
        import_source={"bucket": "b", "bucket_owner": "111111111111", "key_prefix": "p/data/"},
    )
    assert spec["hash_key"] == "pk" and spec["range_key"] == "sk"
    assert spec["global_secondary_indexes"] == [
        {"name": "by-g", "hash_key": "g", "range_key": None, "projection_type": "INCLUDE", "non_key_attributes": ["x"]}
    ]
    assert spec["billing_mode"] == "PAY_PER_REQUEST" and spec["read_capacity"] is None
    assert spec["ttl_attribute"] == "expires"
    assert spec["deletion_protection"] is True and spec["point_in_time_recovery"] is True
    assert spec["sse_enabled"] is False
    assert spec["stream_view_type"] == "NEW_AND_OLD_IMAGES"
    assert spec["import"]["key_prefix"] == "p/data/"
    json.dumps(spec)


def test_table_with_local_secondary_indexes_is_refused() -> None:
    desc = {**SOURCE_DESC, "LocalSecondaryIndexes": [{"IndexName": "lsi1"}]}
    with pytest.raises(MigratorError, match=r"local secondary indexes \(lsi1\).*import from S3 cannot"):
        check_source_shape(desc)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}, None),
        ({"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}, None),
        ({"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, "view KEYS_ONLY"),
        ({"StreamEnabled": True, "StreamViewType": "OLD_IMAGE"}, "view OLD_IMAGE"),
        ({"StreamEnabled": False}, "off"),
        (None, "off"),
    ],
)
def test_stream_problem(spec: dict[str, Any] | None, problem: str | None) -> None:
    desc = {"LatestStreamArn": "arn"} if spec and spec.get("StreamEnabled") else {}
    if spec is not None:
        desc["StreamSpecification"] = spec
    assert stream_problem(desc) == problem


T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
PITR_ON = {"PointInTimeRecoveryStatus": "ENABLED", "EarliestRestorableDateTime": T0 - dt.timedelta(days=1)}


def test_export_time_after_the_stream_start_is_accepted() -> None:
    validate_export_time(T0, T0 - dt.timedelta(minutes=5), PITR_ON, T0)


@pytest.mark.parametrize(
    ("export_time", "stream_start", "pitr", "message"),
    [
        (T0, T0 + dt.timedelta(seconds=1), PITR_ON, "stream was enabled at .* after the export time"),
        (T0, T0 - dt.timedelta(hours=1), {"PointInTimeRecoveryStatus": "DISABLED"}, "point-in-time recovery is off"),
        (T0 - dt.timedelta(days=2), T0 - dt.timedelta(days=3), PITR_ON, "before the start of the PITR window"),
        (T0 + dt.timedelta(hours=1), T0, PITR_ON, "is in the future"),
    ],
)
def test_export_time_guard(
    export_time: dt.datetime, stream_start: dt.datetime, pitr: dict[str, Any], message: str
) -> None:
    with pytest.raises(MigratorError, match=message):
        validate_export_time(export_time, stream_start, pitr, T0)


def test_the_s3_backend_of_each_root_keeps_its_state_beside_the_migration_document(tmp_path: Path) -> None:
    from migrator.infra.backend import S3Backend

    config = parse_config(
        {
            **GOOD,
            "target": {
                "account_id": "111111111111",
                "region": "eu-west-1",
                "role_arn": "arn:aws:iam::111111111111:role/Ops",
            },
            "endpoint_url": "https://127.0.0.1:5000",
        }
    )
    backend = S3Backend(config, tmp_path, s3=None)
    target, source = backend.settings("target"), backend.settings("source")
    assert (target["bucket"], target["key"], target["workspace_key_prefix"]) == (
        config.state_bucket,
        "target.tfstate",
        "migrator",
    )  # so the migration's workspace keeps it at migrator/<migration>/target.tfstate
    assert target["encrypt"] is True and target["use_lockfile"] is True
    assert "assume_role" not in target  # Terraform in the target account reaches its own bucket
    assert source["assume_role"]["role_arn"] == config.target.role_arn  # the bucket account's role
    assert source["endpoints"] == {"s3": "https://127.0.0.1:5000", "sts": "https://127.0.0.1:5000"}
    (path,) = backend.init_config("source")
    text = Path(path).read_text()
    assert 'assume_role = { role_arn = "arn:aws:iam::' in text and "secret" not in text.lower()


def test_a_root_in_the_other_account_needs_the_bucket_accounts_role(tmp_path: Path) -> None:
    from migrator.infra.backend import S3Backend

    config = parse_config(GOOD)  # the target account by profile: no role the source's Terraform could assume
    with pytest.raises(MigratorError, match=r"by assuming target.role_arn, which is not set"):
        S3Backend(config, tmp_path, s3=None).settings("source")
