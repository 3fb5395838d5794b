"""Phase 3, import (target): the target table created by ``import_table`` from the export's ``data/``
prefix, converged until the plan is empty, and the import's result checked against the export.

Invariant 6 (docs/architecture.md): ``import_table`` only acts when the table is created (the module
ignores later changes to it), and the runner refuses any plan that would destroy or replace the table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.dynamodb import count_items
from ..aws.errors import is_not_found
from ..clock import iso, now
from ..config import MigrationConfig
from ..errors import MigratorError
from ..infra.terraform import TerraformRunner
from .base import Account, ApplyOptions, Facts, Phase
from .guards import retention_deadline
from .prepare import check_source_shape, describe_source

if TYPE_CHECKING:
    from ..context import MigrationContext

#: The target table in the target root's state.
TABLE_ADDRESS = "module.target_table[0].aws_dynamodb_table.this"
MAX_IMPORT_WAIT_MINUTES = 24 * 60

#: The migration document's section recording that the table was handed over (`migrator handover`).
HANDOVER_SECTION = "handover"

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


def handed_over(ctx: MigrationContext) -> dict[str, Any] | None:
    """The handover record once the table was handed to the application's Terraform, else None. From then on
    the table is no longer migrator's: the target root's ``table`` variable is null (``count = 0``), the table
    is no longer in migrator's state, and phase 3 never adopts it again."""
    record = ctx.state.section(HANDOVER_SECTION)
    return record if record.get("at") else None


# The data steps ----------------------------------------------------------------------------------------
def derive_table_spec(ctx: MigrationContext) -> dict[str, Any]:
    """The target table's specification, derived now from the source table and the recorded export."""
    c = ctx.config
    exp = ctx.state.section("export")
    if not exp.get("data_prefix"):
        raise MigratorError("the target table is not specified yet: phase 3 needs the export of phase 2")
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
    spec["create_timeout"] = f"{import_timeout_minutes(ctx)}m"
    return spec


def prepare_table_spec(ctx: MigrationContext) -> None:
    """Derive the target table's specification once, when phase 3 first runs, and record it."""
    if not ctx.state.section("import").get("table_spec"):
        ctx.state.update("import", table_spec=derive_table_spec(ctx))


def import_timeout_minutes(ctx: MigrationContext) -> int:
    """How long Terraform may wait for the import: configured, else the time left to the stream-retention
    deadline (past it the migration cannot go on anyway), at most 24 h."""
    configured = ctx.config.target_table.import_timeout_minutes
    if configured is not None:
        return configured
    deadline = retention_deadline(ctx)
    if deadline is None:
        return MAX_IMPORT_WAIT_MINUTES
    left = int((deadline - now()).total_seconds() // 60)
    return max(1, min(MAX_IMPORT_WAIT_MINUTES, left))


def find_import(ctx: MigrationContext, table_arn: str) -> dict[str, Any] | None:
    """The import that creates the target table: by the ARN recorded, else the latest ListImports names."""
    ddb = ctx.target.client("dynamodb")
    arn = ctx.state.section("import").get("arn")
    if not arn:
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableArn": table_arn}
        while True:
            page = ddb.list_imports(**kwargs)
            summaries += page.get("ImportSummaryList", [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        if not summaries:
            return None
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        arn = max(summaries, key=lambda s: s.get("StartTime") or epoch)["ImportArn"]
    return dict(ddb.describe_import(ImportArn=arn)["ImportTableDescription"])


def wait_import(ctx: MigrationContext, arn: str) -> dict[str, Any]:
    """Watch an import until it ends (a progress line with what it processed so far)."""
    ddb = ctx.target.client("dynamodb")
    ctx.state.update("import", arn=arn)
    with ctx.report.live() as board:
        task = board.add("import in progress")
        while True:
            desc = dict(ddb.describe_import(ImportArn=arn)["ImportTableDescription"])
            if desc["ImportStatus"] not in ("IN_PROGRESS", "CANCELLING"):
                return desc
            task.update(f"import {desc['ImportStatus'].lower()}: {int(desc.get('ProcessedItemCount', 0)):,} items read")
            time.sleep(ctx.waits.import_poll_s)


def _import_failed(desc: Mapping[str, Any]) -> MigratorError:
    return MigratorError(
        f"the import ended {desc['ImportStatus']} ({desc.get('FailureCode', 'no code')}: "
        f"{desc.get('FailureMessage', 'no message')}); look at its CloudWatch logs, delete the partly imported "
        "target table yourself (migrator never deletes a table) and run phase 3 again"
    )


def reconcile_table(ctx: MigrationContext, terraform: TerraformRunner, var_file: Path) -> None:
    """Before phase 3 plans: make a target table an earlier run left behind Terraform's again, never replacing it.

    An import outlasting Terraform's wait fails the apply and taints the table; a run killed meanwhile
    leaves the table out of the state. Either way the import goes on in DynamoDB: wait for it, then
    untaint the table (or adopt it into the state) so the next plan only converges it.
    """
    c = ctx.config
    if handed_over(ctx):
        return  # the application's Terraform owns the table now: never adopted back
    ddb = ctx.target.client("dynamodb")
    try:
        table = ddb.describe_table(TableName=c.target_table_name)["Table"]
    except ClientError as err:
        if not is_not_found(err):
            raise
        return  # nothing created yet: Terraform creates the table from the export
    recorded = ctx.state.section("import")
    found = None if recorded.get("checked_at") else find_import(ctx, table["TableArn"])
    if found is not None:
        desc = (
            found
            if found["ImportStatus"] not in ("IN_PROGRESS", "CANCELLING")
            else wait_import(ctx, found["ImportArn"])
        )
        ctx.state.update("import", arn=desc["ImportArn"], status=desc["ImportStatus"])
        if desc["ImportStatus"] != "COMPLETED":
            raise _import_failed(desc)
    in_state = {r.address: r for r in terraform.resources()}.get(TABLE_ADDRESS)
    if in_state is None:
        if found is None and not recorded.get("checked_at"):
            raise MigratorError(
                f"a table named {c.target_table_name} exists in the target account {c.target.account_id} but no "
                "import of this migration created it; migrator never adopts or deletes a table it did not "
                "create, so remove it yourself or set target.table to another name"
            )
        terraform.import_resource(var_file, TABLE_ADDRESS, c.target_table_name)
        ctx.report.done(f"target table {c.target_table_name} adopted into the Terraform state (its import completed)")
    elif in_state.tainted:
        terraform.untaint(TABLE_ADDRESS)
        ctx.report.done(f"target table {c.target_table_name} untainted: its import completed, it is not replaced")


def check_import(ctx: MigrationContext) -> None:
    """The import completed without errors and holds as many items as the export (checked once)."""
    c = ctx.config
    recorded = ctx.state.section("import")
    if recorded.get("checked_at"):
        ctx.report.done(
            f"import checked at {recorded['checked_at']} ({recorded.get('imported')} items); only converged now"
        )
        return
    ddb = ctx.target.client("dynamodb")
    table = ddb.describe_table(TableName=c.target_table_name)["Table"]
    expected = int(ctx.state.section("export")["item_count"])
    details = find_import(ctx, table["TableArn"])
    if details is not None:
        ctx.state.update(
            "import",
            arn=details["ImportArn"],
            status=details["ImportStatus"],
            imported=int(details.get("ImportedItemCount", 0)),
            errors=int(details.get("ErrorCount", 0)),
        )
        if details["ImportStatus"] != "COMPLETED":
            raise _import_failed(details)
        if int(details.get("ErrorCount", 0)):
            raise MigratorError(
                f"the import reported {details['ErrorCount']} item errors; look at its CloudWatch logs, delete "
                "the target table yourself (migrator never deletes a table) and run phase 3 again"
            )
        imported = int(details.get("ImportedItemCount", 0))
    else:
        imported = count_items(ddb, c.target_table_name)
        ctx.state.update("import", status="COMPLETED", imported=imported, errors=0, counted=True)
    if imported != expected:
        raise MigratorError(
            f"the import holds {imported} items but the export had {expected}; the target is incomplete, so "
            "delete the target table yourself (migrator never deletes a table) and run phase 3 again"
        )
    ctx.state.update("import", checked_at=iso(now()))
    ctx.report.done(f"import complete: {imported} items, matching the export")


# The phase ------------------------------------------------------------------------------------------
class Import(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        # Recorded once phase 3 has run; before that (a plan review), derived without recording anything.
        # Once handed over, no share: the table is the application's (module.target_table has count = 0).
        if handed_over(ctx):
            variables["table"] = None
            return
        variables["table"] = ctx.state.section("import").get("table_spec") or derive_table_spec(ctx)

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        prepare_table_spec(ctx)

    def reconcile(self, ctx: MigrationContext, root: Account, terraform: TerraformRunner, var_file: Path) -> None:
        reconcile_table(ctx, terraform, var_file)

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
