"""Phase 2, export (source): the replicator deployed with its event source mapping **disabled** at
``TRIM_HORIZON``, then the export of the source table into the target account's bucket at a recorded
``ExportTime``, watched to completion.

Invariant 1 (docs/architecture.md): the stream must predate ``ExportTime``; the replay starts at
``TRIM_HORIZON``, at or before it, so no change made while the export runs is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.errors import error_code
from ..clock import iso, now, parse_iso
from ..errors import MigratorError
from ..infra.package import build_zip
from .base import Account, ApplyOptions, Facts, Phase
from .prepare import inspect_source, pitr_status, preflight

if TYPE_CHECKING:
    from ..context import MigrationContext

EXPORT_PHASE = {"COMPLETED": "done", "IN_PROGRESS": "in progress", "FAILED": "failed"}


# Pure checks ----------------------------------------------------------------------------------------
def validate_export_time(
    export_time: dt.datetime,
    stream_start: dt.datetime,
    pitr: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    """Invariant 1 (docs/architecture.md), and PITR: the stream predates ExportTime, and ExportTime lies in
    the PITR window."""
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise MigratorError(
            "point-in-time recovery is off on the source table, and the export needs it; run phase 1 with --enable-pitr"
        )
    if stream_start > export_time:
        raise MigratorError(
            f"the source stream was enabled at {stream_start.isoformat()}, after the export time "
            f"{export_time.isoformat()}, so changes between them would be lost; start a new export"
        )
    earliest = pitr.get("EarliestRestorableDateTime")
    if isinstance(earliest, dt.datetime) and export_time < earliest.astimezone(dt.UTC):
        raise MigratorError(
            f"the export time {export_time.isoformat()} is before the start of the PITR window "
            f"({earliest.isoformat()}); choose a later export time"
        )
    if export_time > now + dt.timedelta(seconds=5):
        raise MigratorError(
            f"the export time {export_time.isoformat()} is in the future; choose a time in the PITR window"
        )


def export_id(export_arn: str) -> str:
    return export_arn.rsplit("/", 1)[-1]


def find_data_prefix(s3: Any, bucket: str, prefix: str, export_arn: str, manifest_key: str | None) -> str:
    """The ``data/`` prefix of an export: from its manifest when there is one, else by listing."""
    if manifest_key:
        try:
            body = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
            summary = json.loads(body)
            files_key = str(summary.get("manifestFilesS3Key") or manifest_key)
            return files_key.rsplit("/", 1)[0] + "/data/"
        except ClientError as err:
            if error_code(err) not in ("NoSuchKey", "404", "AccessDenied"):
                raise
    base = f"{prefix.rstrip('/')}/AWSDynamoDB/"
    candidates: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base, Delimiter="/"):
        candidates += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    wanted = [c for c in candidates if c.rstrip("/").endswith(export_id(export_arn))]
    if len(wanted) == 1:
        return wanted[0] + "data/"
    if len(candidates) == 1:
        return candidates[0] + "data/"
    if not candidates:
        raise MigratorError(
            f"the export wrote nothing under s3://{bucket}/{base}; check the bucket policy and run phase 2 again"
        )
    raise MigratorError(
        f"s3://{bucket}/{base} holds {len(candidates)} exports and none is recognisably {export_id(export_arn)}; "
        "remove the stale ones or set a new export_prefix"
    )


# The data step -----------------------------------------------------------------------------------------
def start_or_resume_export(ctx: MigrationContext) -> None:
    """Start the export (or find the one already started), wait for it, and record its data prefix."""
    c = ctx.config
    ddb = ctx.source.client("dynamodb")
    exp = ctx.state.section("export")
    if exp.get("status") == "FAILED" or not exp.get("client_token"):
        attempt = int(exp.get("attempt", 0)) + 1
        exp = {"attempt": attempt, "client_token": f"{c.migration}-export-{attempt}", "export_time": iso(now())}
        ctx.state.replace("export", exp)
    export_time = parse_iso(exp["export_time"])
    stream = ctx.state.section("stream")
    validate_export_time(
        export_time,
        parse_iso(stream["created_at"]),
        pitr_status(ddb, c.source_table_name),
        now(),
    )
    if not exp.get("arn"):
        resp = ddb.export_table_to_point_in_time(
            TableArn=stream["table_arn"],
            ExportTime=export_time,
            ClientToken=exp["client_token"],
            S3Bucket=c.bucket_name,
            S3BucketOwner=c.target.account_id,
            S3Prefix=c.export_s3_prefix,
            ExportFormat="DYNAMODB_JSON",
        )["ExportDescription"]
        start = resp.get("StartTime")
        exp.update(
            arn=resp["ExportArn"],
            status=resp["ExportStatus"],
            start_time=iso(start if isinstance(start, dt.datetime) else now()),
        )
        ctx.state.update("export", arn=exp["arn"], status=exp["status"], start_time=exp["start_time"])
        ctx.report.done(f"export started at ExportTime {exp['export_time']}")
    desc = wait_export(ctx, exp["arn"])
    if desc["ExportStatus"] != "COMPLETED":
        ctx.state.update("export", status=desc["ExportStatus"], failure=desc.get("FailureMessage"))
        raise MigratorError(
            f"the export failed ({desc.get('FailureCode', 'no code')}: "
            f"{desc.get('FailureMessage', 'no message')}); "
            "fix the cause (bucket policy, PITR) and run phase 2 again to start a new export"
        )
    prefix = find_data_prefix(
        ctx.target.client("s3"), c.bucket_name, c.export_s3_prefix, exp["arn"], desc.get("ExportManifest")
    )
    done = {
        "status": "COMPLETED",
        "item_count": int(desc.get("ItemCount", 0)),
        "billed_bytes": int(desc.get("BilledSizeBytes", 0)),
        "end_time": iso(desc["EndTime"]) if isinstance(desc.get("EndTime"), dt.datetime) else iso(now()),
        "data_prefix": prefix,
    }
    ctx.state.update("export", **done)
    ctx.report.done(f"export complete: {done['item_count']} items in s3://{c.bucket_name}/{prefix}")


def wait_export(ctx: MigrationContext, arn: str) -> dict[str, Any]:
    ddb = ctx.source.client("dynamodb")
    deadline = time.monotonic() + ctx.waits.export_timeout_s
    with ctx.report.live() as board:
        task = board.add("export in progress")
        while True:
            desc = dict(ddb.describe_export(ExportArn=arn)["ExportDescription"])
            if desc["ExportStatus"] != "IN_PROGRESS":
                return desc
            if time.monotonic() > deadline:
                raise MigratorError("the export is still in progress; run phase 2 again to keep watching it")
            task.update(f"export {desc['ExportStatus'].lower()}")
            time.sleep(ctx.waits.export_poll_s)


# The phase ------------------------------------------------------------------------------------------
class Export(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        c = ctx.config
        stream = ctx.state.section("stream")
        if not stream.get("arn"):
            raise MigratorError("the source stream is not recorded yet; run phase 1 first")
        package, sha = build_zip(ctx.state_dir / "build" / "replicator.zip")
        replicator: dict[str, Any] = {
            "enabled": False,  # deployed disabled; phase 4 enables it
            "package_path": str(package),
            "package_base64sha256": sha,
            "writer_role_arn": c.writer_role_arn,
            "external_id": c.writer_external_id,
            "target_table_name": c.target_table_name,
            "target_region": c.target.region,
            "failure_bucket_name": c.failure_bucket_name,
            **c.replicator.model_dump(),
            "retry": c.retry.model_dump(),
        }
        replicator["alarm_actions"] = list(c.replicator.alarm_actions)
        if c.endpoint_url:
            replicator["target_endpoint_url"] = c.endpoint_url
        variables["source_table"] = {
            "name": c.source_table_name,
            "arn": stream["table_arn"],
            "stream_arn": stream["arn"],
        }
        variables["replicator"] = replicator

    def check(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        inspect_source(ctx, enable_stream=False, enable_pitr=False)

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        preflight(ctx, enable_stream=False, enable_pitr=False)

    def after_terraform(self, ctx: MigrationContext) -> None:
        start_or_resume_export(ctx)

    def infer(self, facts: Facts) -> str:
        status = facts.export["status"]
        if status in EXPORT_PHASE:
            return EXPORT_PHASE[status or ""]
        mapping = facts.replicator["mapping"]
        if status is None or mapping is None:
            return "unknown"
        return "not started" if mapping == "absent" else "applied"


EXPORT = Export(
    number=2,
    name="export",
    summary="replicator deployed disabled at TRIM_HORIZON; export of the source table to the bucket",
    accounts=("source", "target"),
    roots=("source",),
)
