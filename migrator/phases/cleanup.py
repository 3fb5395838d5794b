"""Phase 6, cleanup (source + target): the machinery of the migration removed, both tables kept.

Allowed after a final cutover (the recorded direction is ``reverse``: the target table is live), or with
``--abandon`` after a rollback (the source table is live again). Refused while failure records wait in
either failure bucket. Terraform removes both replicators (functions, mappings, alarms, log groups,
failure buckets), both writer roles and the export bucket; it never deletes a table (invariant 10: the
target table stays in the target root, so the table guard refuses any plan that would destroy it), and
what is left for the operator to decide is said at the end and recorded (section ``cleanup``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.errors import error_code, is_not_found
from ..aws.s3 import MISSING_BUCKET_CODES, REDRIVEN_PREFIX, empty_bucket, failure_object_keys
from ..clock import iso, now
from ..errors import MigratorError
from .base import Account, ApplyOptions, Facts, Phase
from .direction import direction_of, last_action

if TYPE_CHECKING:
    from ..context import MigrationContext

MAPPING_WAIT_S = 120.0


# Pure checks ------------------------------------------------------------------------------------------
def cutover_problem(cutover: Mapping[str, Any], *, abandon: bool) -> str | None:
    """Why cleanup may not run now (one sentence, what to do), or None. Pure: tested table-style."""
    direction = direction_of(cutover)
    action = last_action(cutover)
    if direction == "reverse":
        if abandon:
            return (
                "--abandon keeps the source as the live table, but the last cutover made the target table live; "
                "run phase 6 without --abandon, or `migrator rollback` first (nothing was changed)"
            )
        return None
    if action is None:
        return (
            "cleanup removes the way back, so it needs a cutover first, and this migration was never cut over; "
            "run `migrator cutover` once the application writes to the target table (nothing was changed)"
        )
    if action != "rollback":
        return (
            f"the migration document records the direction forward after a {action}, which only a rollback "
            "leaves; check its cutover section before cleaning up (nothing was changed)"
        )
    if not abandon:
        return (
            "the last action was a rollback, so the source table is live again; run `migrator cutover` again, "
            "or give the migration up with `migrator apply --phase 6 --abandon` (nothing was changed)"
        )
    return None


def failures_problem(waiting: Mapping[str, int]) -> str | None:
    """Why failure records stop cleanup (``{bucket: records waiting}``), or None. Pure."""
    for bucket, count in waiting.items():
        if count:
            return (
                f"{count} failure record(s) wait in s3://{bucket} that `migrator redrive` has not handled; "
                "run `migrator redrive` first, cleanup would delete them (nothing was changed)"
            )
    return None


# Reads and data steps ----------------------------------------------------------------------------------
def failure_buckets(ctx: MigrationContext) -> list[tuple[str, Any]]:
    """Both failure destinations and an S3 client of the account each lives in: (bucket, client)."""
    c = ctx.config
    return [
        (c.failure_bucket_name, ctx.source.client("s3")),
        (c.reverse_failure_bucket_name, ctx.target.client("s3")),
    ]


def waiting_failures(ctx: MigrationContext) -> dict[str, int]:
    """Failure records outside ``redriven/`` per failure bucket (a bucket already gone holds none)."""
    waiting: dict[str, int] = {}
    for bucket, s3 in failure_buckets(ctx):
        try:
            waiting[bucket] = len(failure_object_keys(s3, bucket))
        except ClientError as err:
            if error_code(err) not in MISSING_BUCKET_CODES:
                raise
            waiting[bucket] = 0
    return waiting


def mappings(ctx: MigrationContext) -> list[tuple[str, str, Any]]:
    """The recorded event source mappings: (which, UUID, Lambda client of its account)."""
    found = []
    forward = ctx.state.section("source_outputs").get("event_source_mapping_uuid")
    reverse = ctx.state.section("target_outputs").get("reverse_event_source_mapping_uuid")
    if forward:
        found.append(("forward", str(forward), ctx.source.client("lambda")))
    if reverse:
        found.append(("reverse", str(reverse), ctx.target.client("lambda")))
    return found


def stop_replication(ctx: MigrationContext) -> None:
    """Disable every enabled mapping first, so no replicator writes (or fails into a bucket) while Terraform
    removes the writer roles and buckets in two accounts, whatever order the roots are applied in."""
    for which, uuid, lam in mappings(ctx):
        try:
            state = lam.get_event_source_mapping(UUID=uuid).get("State")
        except ClientError as err:
            if is_not_found(err):
                continue
            raise
        if state in ("Disabled", "Disabling", "Deleting"):
            continue
        lam.update_event_source_mapping(UUID=uuid, Enabled=False)
        deadline = time.monotonic() + MAPPING_WAIT_S
        while lam.get_event_source_mapping(UUID=uuid).get("State") != "Disabled":
            if time.monotonic() > deadline:
                raise MigratorError(f"the {which} event source mapping {uuid} did not stop; run phase 6 again")
            time.sleep(1.0)
        ctx.report.done(f"{which} event source mapping {uuid} disabled")


def empty_buckets(ctx: MigrationContext) -> None:
    """Empty the export bucket and both failure buckets (every version and delete marker: they are versioned).

    Why here and not ``force_destroy``: Terraform destroys a bucket with the ``force_destroy`` its state
    holds, so it would take a first apply just to set it, and it would delete, unseen, a failure record that
    arrived after the check. Emptying here deletes only the export and what redrive has handled (a record
    not under ``redriven/`` stops it), and a record landing later makes Terraform's delete of that bucket fail
    (BucketNotEmpty), so the next run refuses and names it.
    """
    c = ctx.config
    deleted = empty_bucket(ctx.target.client("s3"), c.bucket_name)
    if deleted:
        ctx.report.done(f"export bucket {c.bucket_name} emptied ({deleted} object versions)")
    for bucket, s3 in failure_buckets(ctx):
        try:
            deleted = empty_bucket(s3, bucket, refuse=lambda key: not key.startswith(REDRIVEN_PREFIX))
        except ValueError as waiting:
            raise MigratorError(
                f"a failure record ({waiting}) arrived in s3://{bucket} while cleanup ran; run `migrator redrive`, "
                "then phase 6 again"
            ) from None
        if deleted:
            ctx.report.done(f"failure bucket {bucket} emptied ({deleted} object versions)")


def what_is_left(ctx: MigrationContext) -> dict[str, Any]:
    """The tables migrator leaves for the operator to decide about, as AWS describes them now."""
    c = ctx.config
    left: dict[str, Any] = {}
    ddb = ctx.source.client("dynamodb")
    try:
        desc = ddb.describe_table(TableName=c.source_table_name)["Table"]
        pitr = ddb.describe_continuous_backups(TableName=c.source_table_name)["ContinuousBackupsDescription"]
        left["source_table"] = {
            "name": c.source_table_name,
            "arn": desc.get("TableArn"),
            "stream_arn": desc.get("LatestStreamArn"),
            "stream_view_type": (desc.get("StreamSpecification") or {}).get("StreamViewType"),
            "pitr": (pitr.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus"),
        }
    except ClientError as err:
        if not is_not_found(err):
            raise
        left["source_table"] = {"name": c.source_table_name, "arn": None}
    try:
        target = ctx.target.client("dynamodb").describe_table(TableName=c.target_table_name)["Table"]
        left["target_table"] = {"name": c.target_table_name, "arn": target.get("TableArn")}
    except ClientError as err:
        if not is_not_found(err):
            raise
        left["target_table"] = {"name": c.target_table_name, "arn": None}
    return left


def report_left(ctx: MigrationContext, left: Mapping[str, Any], *, abandoned: bool) -> None:
    src, tgt = left["source_table"], left["target_table"]
    live = "source" if abandoned else "target"
    ctx.report.info(f"left for you to decide (migrator never deletes a table; the {live} table is the live one):")
    ctx.report.info(f"  source table {src['name']} ({src.get('arn') or 'not found'})")
    if src.get("arn"):
        ctx.report.info(
            f"  its stream {src.get('stream_arn') or 'off'} ({src.get('stream_view_type') or 'no view'}) and "
            f"point-in-time recovery {src.get('pitr') or 'unknown'}: disable them when nothing needs them"
        )
    ctx.report.info(f"  target table {tgt['name']} ({tgt.get('arn') or 'not found'})")


# The phase ------------------------------------------------------------------------------------------
class Cleanup(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        # Every share before this one stays rendered (a re-run of an earlier phase after cleanup keeps the
        # machinery removed); this share sets it to nothing. The target table is never touched.
        if root == "source":
            variables["replicator"] = None
            variables["reverse_writer_role"] = None
        else:
            variables["export_bucket"] = None
            variables["writer_role"] = None
            variables["reverse_replicator"] = None

    def check(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        problem = cutover_problem(ctx.state.section("cutover"), abandon=options.abandon) or failures_problem(
            waiting_failures(ctx)
        )
        if problem:
            raise MigratorError(problem)

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        stop_replication(ctx)
        problem = failures_problem(waiting_failures(ctx))  # again: a batch may have failed while they stopped
        if problem:
            raise MigratorError(problem)
        empty_buckets(ctx)
        ctx.state.update("cleanup", abandoned=options.abandon, started_at=iso(now()))

    def applied(self, ctx: MigrationContext, root: Account, changes: list[tuple[str, str]]) -> None:
        removed = sorted(address for kind, address in changes if kind == "destroy")
        previous = ctx.state.section("cleanup").get("removed") or {}
        ctx.state.update("cleanup", removed={**previous, root: sorted(set(previous.get(root, [])) | set(removed))})

    def after_terraform(self, ctx: MigrationContext) -> None:
        left = what_is_left(ctx)
        abandoned = bool(ctx.state.section("cleanup").get("abandoned"))
        ctx.state.update("cleanup", at=iso(now()), left=left)
        count = sum(len(v) for v in (ctx.state.section("cleanup").get("removed") or {}).values())
        ctx.report.done(f"cleanup removed {count} resources: both replicators, both writer roles, the buckets")
        report_left(ctx, left, abandoned=abandoned)

    def infer(self, facts: Facts) -> str:
        table, bucket, mapping = facts.import_["table"], facts.export_bucket(), facts.replicator["mapping"]
        if table is None or bucket is None or mapping is None:
            return "unknown"
        if table != "absent" and bucket == "absent" and mapping == "absent":
            return "applied"  # the target table exists, the machinery does not
        return "not started"


CLEANUP = Cleanup(
    number=6,
    name="cleanup",
    summary="after a final cutover: replicators, writer roles and buckets removed; both tables kept",
    accounts=("source", "target"),
    roots=("source", "target"),
    roots_together=True,
    after_cutover=True,
)
