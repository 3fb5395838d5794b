"""Phase 1, prepare (target + source): preflight of the source table, then the export bucket and the
cross-account writer role in the target account.

The preflight refuses a source table the migration cannot move faithfully (missing, local secondary
indexes, a stream without full images, no PITR), and enables the stream and PITR only when the operator
asked for it. It records the stream (ARN, view, when it began) that every later phase relies on:
invariant 1 of docs/architecture.md starts here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.errors import error_code
from ..clock import iso, now
from ..errors import MigratorError
from .base import Account, ApplyOptions, Facts, Phase

if TYPE_CHECKING:
    from ..context import MigrationContext

GOOD_STREAM_VIEWS = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")


# Pure checks and source-table reads -----------------------------------------------------------------
def describe_source(ddb: Any, table: str, account: str, region: str) -> dict[str, Any]:
    try:
        return dict(ddb.describe_table(TableName=table)["Table"])
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            raise MigratorError(
                f"source table {table!r} does not exist in account {account} ({region}); "
                "check source.table, source.account_id and source.region"
            ) from None
        raise


def check_source_shape(desc: Mapping[str, Any]) -> None:
    """Refuse tables the import cannot recreate faithfully."""
    if desc.get("LocalSecondaryIndexes"):
        names = ", ".join(i["IndexName"] for i in desc["LocalSecondaryIndexes"])
        raise MigratorError(
            f"the source table has local secondary indexes ({names}), which DynamoDB import from S3 cannot "
            "create; migrate it with a different method or drop the indexes first"
        )


def stream_problem(desc: Mapping[str, Any]) -> str | None:
    """Why the source table's stream cannot feed the replicator, or None when it can."""
    spec = desc.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled") or not desc.get("LatestStreamArn"):
        return "off"
    view = spec.get("StreamViewType")
    if view not in GOOD_STREAM_VIEWS:
        return f"view {view}"
    return None


def pitr_status(ddb: Any, table: str) -> dict[str, Any]:
    desc = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return dict(desc.get("PointInTimeRecoveryDescription") or {})


def stream_created_at(streams: Any, stream_arn: str) -> dt.datetime:
    """When the stream began to record changes (its creation request time, else its label)."""
    desc = streams.describe_stream(StreamArn=stream_arn, Limit=1)["StreamDescription"]
    created = desc.get("CreationRequestDateTime")
    if isinstance(created, dt.datetime):
        return created.astimezone(dt.UTC)
    label = stream_arn.rsplit("/", 1)[-1]
    return dt.datetime.fromisoformat(label).replace(tzinfo=dt.UTC)


def wait_for(check: Callable[[], bool], *, timeout: float, interval: float = 2.0, what: str = "the operation") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise MigratorError(f"timed out after {int(timeout)} s waiting for {what}; run the phase again")
        time.sleep(interval)


def bucket_taken_elsewhere(s3: Any, bucket: str) -> bool:
    """True when ``bucket`` exists but belongs to another account than the caller's (bucket names are global)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        code = error_code(err)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            return True
        raise
    owned = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    return bucket not in owned


# The data step -----------------------------------------------------------------------------------------
def check_names_free(ctx: MigrationContext) -> None:
    """The bucket, table and role names this migration needs are free, or already this migration's."""
    c = ctx.config
    if bucket_taken_elsewhere(ctx.target.client("s3"), c.bucket_name):
        raise MigratorError(
            f"the export bucket {c.bucket_name} already exists in another account than the target "
            f"{c.target.account_id}; set bucket: to a free name"
        )
    if not ctx.state.section("import"):  # phase 3 has not begun: the target table must not exist yet
        try:
            ctx.target.client("dynamodb").describe_table(TableName=c.target_table_name)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
        else:
            raise MigratorError(
                f"a table named {c.target_table_name} already exists in the target account {c.target.account_id} "
                f"({c.target.region}); migrator creates the target table from the export and never adopts or "
                "deletes an existing one, so set target.table to a free name"
            )
    if ctx.backend.has_state("target", c.migration):
        return
    try:
        role = ctx.target.client("iam").get_role(RoleName=c.writer_role_name)["Role"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        return
    raise MigratorError(
        f"a migration named {c.migration!r} already exists in the target account (role "
        f"{role['RoleName']} since {role.get('CreateDate')}) but its Terraform state is not in the state bucket "
        f"{c.state_bucket}; choose another migration name, or set state: to the bucket that holds its state"
    )


def inspect_source(
    ctx: MigrationContext, *, enable_stream: bool, enable_pitr: bool
) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Read-only: refuse a source table the migration cannot move; ``(description, stream problem, PITR)``."""
    c = ctx.config
    ddb = ctx.source.client("dynamodb")
    desc = describe_source(ddb, c.source_table_name, c.source.account_id, c.source.region)
    check_source_shape(desc)
    problem = stream_problem(desc)
    if problem and problem != "off":
        raise MigratorError(
            f"the source table's stream has {problem}, but the replicator needs full item images; "
            "switch the stream to NEW_AND_OLD_IMAGES (disable it, then enable it with that view) and run phase 1 "
            "again"
        )
    pitr = pitr_status(ddb, c.source_table_name)
    if problem == "off" and not enable_stream:
        raise MigratorError(
            "the source table has no stream; run phase 1 with --enable-stream to enable one "
            "(NEW_AND_OLD_IMAGES) before the export"
        )
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED" and not enable_pitr:
        raise MigratorError(
            "point-in-time recovery is off on the source table; run phase 1 with --enable-pitr to enable it"
        )
    return desc, problem, pitr


def preflight(ctx: MigrationContext, *, enable_stream: bool, enable_pitr: bool) -> None:
    """Check the source table, enable its stream and PITR when asked, and record the stream."""
    c = ctx.config
    ddb = ctx.source.client("dynamodb")
    desc, problem, pitr = inspect_source(ctx, enable_stream=enable_stream, enable_pitr=enable_pitr)
    if problem == "off":
        ddb.update_table(
            TableName=c.source_table_name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        ctx.state.update("stream", enabled_by_migrator_at=iso(now()))
        wait_for(
            lambda: stream_problem(ddb.describe_table(TableName=c.source_table_name)["Table"]) is None,
            timeout=300,
            what="the source stream to be enabled",
        )
        desc = ddb.describe_table(TableName=c.source_table_name)["Table"]
        ctx.report.done("stream enabled on the source table (NEW_AND_OLD_IMAGES)")
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        ddb.update_continuous_backups(
            TableName=c.source_table_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        ctx.report.done("point-in-time recovery enabled on the source table")
    recorded = ctx.state.section("stream")
    if recorded.get("arn") and recorded["arn"] != desc["LatestStreamArn"] and ctx.state.section("export"):
        raise MigratorError(
            "the source table's stream changed since the export started, so the replicator would miss "
            "changes; start the migration again with a new migration name"
        )
    started = stream_created_at(ctx.source.client("dynamodbstreams"), desc["LatestStreamArn"])
    stream = {
        "arn": desc["LatestStreamArn"],
        "table_arn": desc["TableArn"],
        "view_type": desc["StreamSpecification"]["StreamViewType"],
        "created_at": iso(started),
    }
    ctx.state.update("stream", **stream)
    ctx.state.update("source_table", item_count=desc.get("ItemCount"), size_bytes=desc.get("TableSizeBytes"))
    ctx.report.done(
        f"source table {c.source_table_name}: stream {stream['view_type']} since {stream['created_at']}, PITR on"
    )


# The phase ------------------------------------------------------------------------------------------
class Prepare(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        c = ctx.config
        variables["export_bucket"] = {
            "name": c.bucket_name,
            "export_prefix": c.export_s3_prefix + "/",
            "expiration_days": c.export_expiration_days,
        }
        variables["writer_role"] = {
            "name": c.writer_role_name,
            "external_id": c.writer_external_id,
            "replicator_role_arn": c.replicator_role_arn,
        }

    def check(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        check_names_free(ctx)
        inspect_source(ctx, enable_stream=options.enable_stream, enable_pitr=options.enable_pitr)

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        preflight(ctx, enable_stream=options.enable_stream, enable_pitr=options.enable_pitr)

    def infer(self, facts: Facts) -> str:
        return {"present": "applied", "absent": "not started"}.get(facts.export_bucket() or "", "unknown")


PREPARE = Prepare(
    number=1,
    name="prepare",
    summary="preflight of the source table; export bucket and cross-account writer role in the target account",
    accounts=("target", "source"),
    roots=("target",),
)
