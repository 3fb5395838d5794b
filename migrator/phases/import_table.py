"""Phase 3, import (target): the target table created by ``import_table`` from the export's ``data/``
prefix, converged until the plan is empty, and the import's result checked against the export.

Invariant 6 (docs/architecture.md): ``import_table`` only acts when the table is created (the module
ignores later changes to it), and the runner refuses any plan that would destroy or replace the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.dynamodb import count_items
from ..config import MigrationConfig
from ..errors import MigratorError
from .base import Account, ApplyOptions, Facts, Phase
from .prepare import check_source_shape, describe_source

if TYPE_CHECKING:
    from ..context import MigrationContext

IMPORT_PHASE = {"COMPLETED": "done", "IN_PROGRESS": "in progress", "FAILED": "failed", "CANCELLED": "failed"}


# The target table's specification (pure) ---------------------------------------------------------------
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


# The data steps ----------------------------------------------------------------------------------------
def prepare_table_spec(ctx: MigrationContext) -> None:
    """Derive the target table's specification from the source table, once, and record it."""
    c = ctx.config
    if ctx.state.section("import").get("table_spec"):
        return
    exp = ctx.state.section("export")
    ddb = ctx.source.client("dynamodb")
    desc = describe_source(ddb, c.source_table_name, c.source.account_id, c.source.region)
    spec = table_spec(
        desc,
        c,
        ttl_attribute=ttl_attribute_of(ddb, c.source_table_name),
        import_source={
            "bucket": c.bucket_name,
            "bucket_owner": c.target.account_id,
            "key_prefix": exp["data_prefix"],
        },
    )
    ctx.state.update("import", table_spec=spec)


def check_import(ctx: MigrationContext) -> None:
    """The import completed without errors and holds as many items as the export."""
    c = ctx.config
    ddb = ctx.target.client("dynamodb")
    table = ddb.describe_table(TableName=c.target_table_name)["Table"]
    expected = int(ctx.state.section("export")["item_count"])
    details = None
    if c.endpoint_url:
        # moto implements ImportTable and DescribeImport but not ListImports: count the items instead.
        ctx.report.note("the emulator cannot list imports; counting the target's items instead")
    else:
        summaries = ddb.list_imports(TableArn=table["TableArn"]).get("ImportSummaryList", [])
        if summaries:
            latest = max(summaries, key=lambda s: s.get("StartTime") or dt.datetime.min.replace(tzinfo=dt.UTC))
            details = ddb.describe_import(ImportArn=latest["ImportArn"])["ImportTableDescription"]
    if details is not None:
        ctx.state.update(
            "import",
            arn=details["ImportArn"],
            status=details["ImportStatus"],
            imported=int(details.get("ImportedItemCount", 0)),
            errors=int(details.get("ErrorCount", 0)),
        )
        if details["ImportStatus"] != "COMPLETED":
            raise MigratorError(
                f"the import ended {details['ImportStatus']} ({details.get('FailureMessage', 'no message')}); "
                "look at its CloudWatch logs, remove the target table and run phase 3 again"
            )
        if int(details.get("ErrorCount", 0)):
            raise MigratorError(
                f"the import reported {details['ErrorCount']} item errors; look at its CloudWatch logs, remove "
                "the target table and run phase 3 again"
            )
        imported = int(details.get("ImportedItemCount", 0))
    else:
        imported = count_items(ddb, c.target_table_name)
        ctx.state.update("import", status="COMPLETED", imported=imported, errors=0, counted=True)
    if imported != expected:
        raise MigratorError(
            f"the import holds {imported} items but the export had {expected}; the target is incomplete, so "
            "remove the target table and run phase 3 again"
        )
    ctx.report.done(f"import complete: {imported} items, matching the export")


# The phase ------------------------------------------------------------------------------------------
class Import(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        table = ctx.state.section("import").get("table_spec")
        if table is None:
            raise MigratorError("the target table is not specified yet: phase 3 needs the export of phase 2")
        variables["table"] = table

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        prepare_table_spec(ctx)

    def after_terraform(self, ctx: MigrationContext) -> None:
        check_import(ctx)

    def infer(self, facts: Facts) -> str:
        imp = facts.import_
        if imp["origin"] == "aws" and imp["status"] in IMPORT_PHASE:
            return IMPORT_PHASE[imp["status"] or ""]
        return {None: "unknown", "absent": "not started"}.get(imp["table"], "applied")


IMPORT = Import(
    number=3,
    name="import",
    summary="target table created from the export with import_table; counts compared",
    accounts=("target", "source"),
    roots=("target",),
    converge=True,
    within_retention=True,
)
