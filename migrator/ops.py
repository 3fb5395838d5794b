"""Data operations of the phases, on boto3 clients: preflight, export, import check, table spec.

Pure functions (no AWS) are separated from the calls so they can be tested table-style.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from .config import MigrationConfig
from .errors import MigratorError

GOOD_STREAM_VIEWS = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# Preflight ----------------------------------------------------------------------------------------
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


def validate_export_time(
    export_time: dt.datetime,
    stream_start: dt.datetime,
    pitr: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    """Invariants 1 and PITR: the stream predates ExportTime and ExportTime lies in the PITR window."""
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


# Export -------------------------------------------------------------------------------------------
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


# Target table spec --------------------------------------------------------------------------------
def _key(schema: list[Mapping[str, str]], kind: str) -> str | None:
    for k in schema:
        if k["KeyType"] == kind:
            return k["AttributeName"]
    return None


def table_spec(
    desc: Mapping[str, Any],
    config: MigrationConfig,
    *,
    ttl_attribute: str | None,
    import_source: Mapping[str, str],
) -> dict[str, Any]:
    """The ``table`` variable of the target root, derived from the source table's description."""
    check_source_shape(desc)
    o = config.target_table
    billing = o.billing_mode or (desc.get("BillingModeSummary") or {}).get("BillingMode")
    throughput = desc.get("ProvisionedThroughput") or {}
    if billing is None:
        billing = "PROVISIONED" if throughput.get("ReadCapacityUnits") else "PAY_PER_REQUEST"
    provisioned = billing == "PROVISIONED"
    sse = desc.get("SSEDescription") or {}
    source_kms = sse.get("Status") in ("ENABLED", "ENABLING") and sse.get("SSEType") == "KMS"
    gsis = []
    for g in desc.get("GlobalSecondaryIndexes") or []:
        proj = g.get("Projection") or {}
        gsi: dict[str, Any] = {
            "name": g["IndexName"],
            "hash_key": _key(g["KeySchema"], "HASH"),
            "range_key": _key(g["KeySchema"], "RANGE"),
            "projection_type": proj.get("ProjectionType", "ALL"),
            "non_key_attributes": proj.get("NonKeyAttributes"),
        }
        if provisioned:
            gt = g.get("ProvisionedThroughput") or {}
            gsi["read_capacity"] = gt.get("ReadCapacityUnits") or 1
            gsi["write_capacity"] = gt.get("WriteCapacityUnits") or 1
        gsis.append(gsi)
    spec_view = (desc.get("StreamSpecification") or {}).get("StreamViewType")
    view = o.stream_view_type or spec_view
    return {
        "name": config.target_table_name,
        "hash_key": _key(desc["KeySchema"], "HASH"),
        "range_key": _key(desc["KeySchema"], "RANGE"),
        "attributes": [{"name": a["AttributeName"], "type": a["AttributeType"]} for a in desc["AttributeDefinitions"]],
        "global_secondary_indexes": gsis,
        "billing_mode": billing,
        "read_capacity": (o.read_capacity or throughput.get("ReadCapacityUnits")) if provisioned else None,
        "write_capacity": (o.write_capacity or throughput.get("WriteCapacityUnits")) if provisioned else None,
        "table_class": o.table_class or (desc.get("TableClassSummary") or {}).get("TableClass", "STANDARD"),
        "sse_enabled": bool(o.kms_key_arn) or source_kms,
        "kms_key_arn": o.kms_key_arn,
        "point_in_time_recovery": o.point_in_time_recovery,
        "ttl_attribute": o.ttl_attribute or ttl_attribute,
        "deletion_protection": o.deletion_protection,
        "stream_view_type": None if view in (None, "NONE") else view,
        "import": dict(import_source),
    }


def ttl_attribute_of(ddb: Any, table: str) -> str | None:
    try:
        desc = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except ClientError:
        return None
    if desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(desc.get("AttributeName"))
    return None


def count_items(ddb: Any, table: str) -> int:
    total = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += int(page["Count"])
    return total
