"""Phase 5, fallback (target + source): the way back, deployed disabled.

A replicator in the target account on the target table's stream (the ``stream_replicator`` module, the
other way round), writing the source table through a writer role in the source account (the
``cross_account_role`` module), trusted only by that replicator's execution role, with its own external id,
allowed only the item writes on the source table. Its event source mapping is created disabled;
``migrator cutover`` enables it (and disables the forward one), and the Terraform share follows the
recorded direction (:mod:`.direction`), so forward and reverse are never enabled together (invariant 9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.errors import is_not_found
from ..errors import MigratorError
from ..infra.package import build_zip
from .base import Account, ApplyOptions, Facts, Phase
from .direction import mapping_enabled
from .prepare import stream_problem

if TYPE_CHECKING:
    from ..context import MigrationContext


def target_stream_problem(desc: dict[str, Any] | None) -> str | None:
    """Why the target table cannot feed the reverse replicator (one sentence), or None. Pure."""
    if desc is None:
        return "the target table does not exist; run phase 3 (import) first"
    problem = stream_problem(desc)
    if problem is None:
        return None
    what = "no stream" if problem == "off" else f"a stream with {problem}"
    return (
        f"the target table has {what}, but the way back needs full item images; set target_table.stream_view_type "
        "to NEW_AND_OLD_IMAGES (or remove it, to follow the source) and run phase 3 again, then phase 5"
    )


def describe_target(ctx: MigrationContext) -> dict[str, Any] | None:
    try:
        return dict(ctx.target.client("dynamodb").describe_table(TableName=ctx.config.target_table_name)["Table"])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def report_fallback(ctx: MigrationContext) -> None:
    """Say the reverse mapping's state, and what turns it on."""
    uuid = ctx.state.section("target_outputs").get("reverse_event_source_mapping_uuid")
    if not uuid:
        ctx.report.note("no reverse event source mapping in the outputs")
        return
    state = ctx.target.client("lambda").get_event_source_mapping(UUID=uuid).get("State")
    ctx.report.done(f"reverse event source mapping {uuid} on the target table's stream is {state}")
    ctx.report.info("the way back is ready: `migrator cutover` turns it on and the forward replicator off")


class Fallback(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        c = ctx.config
        if root == "source":
            table_arn = ctx.state.section("stream").get("table_arn")
            if not table_arn:
                raise MigratorError("the source table is not recorded yet; run phase 1 first")
            variables["reverse_writer_role"] = {
                "name": c.reverse_writer_role_name,
                "external_id": c.reverse_external_id,
                "replicator_account_id": c.target.account_id,
                "replicator_role_arn": c.reverse_replicator_role_arn,
            }
            return
        if not ctx.state.section("target_outputs").get("table_stream_arn"):
            raise MigratorError("the target table's stream is not recorded yet; run phases 3 and 4 first")
        package, sha = build_zip(ctx.state_dir / "build" / "replicator.zip")
        settings = c.replicator
        reverse: dict[str, Any] = {
            "name": c.reverse_replicator_name,
            "enabled": mapping_enabled(ctx.state.section("cutover"), "reverse"),
            "package_path": str(package),
            "package_base64sha256": sha,
            "writer_role_arn": c.reverse_writer_role_arn,
            "external_id": c.reverse_external_id,
            "source_table_name": c.source_table_name,
            "source_region": c.source.region,
            "failure_bucket_name": c.reverse_failure_bucket_name,
            "batch_size": settings.batch_size,
            "maximum_batching_window_in_seconds": settings.maximum_batching_window_in_seconds,
            "maximum_retry_attempts": settings.maximum_retry_attempts,
            "parallelization_factor": settings.parallelization_factor,
            "timeout": settings.timeout,
            "memory_size": settings.memory_size,
            "log_retention_days": settings.log_retention_days,
            "iterator_age_alarm_ms": settings.iterator_age_alarm_ms,
            "retry": c.retry.model_dump(),
            # replicator.kms_key_arn and alarm_actions name resources of the source account and region;
            # the reverse replicator runs in the target account, so it keeps the AWS managed keys and
            # has no alarm actions of its own (its alarms still fire).
        }
        if c.endpoint_url:
            reverse["source_endpoint_url"] = c.endpoint_url
        variables["reverse_replicator"] = reverse

    def check(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        problem = target_stream_problem(describe_target(ctx))
        if problem:
            raise MigratorError(problem)

    def after_terraform(self, ctx: MigrationContext) -> None:
        report_fallback(ctx)

    def infer(self, facts: Facts) -> str:
        mapping = facts.replicator["reverse_mapping"]
        return {None: "unknown", "absent": "not started"}.get(mapping, "applied")


FALLBACK = Fallback(
    number=5,
    name="fallback",
    summary="the way back, disabled: a replicator on the target table's stream, a writer role in the source account",
    accounts=("target", "source"),
    roots=("source", "target"),
    roots_together=True,
)
