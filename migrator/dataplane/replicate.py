"""`migrator replicate --local`: the local stream driver (:mod:`.stream`) wired to a migration's accounts."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..clock import iso, now
from ..errors import MigratorError
from ..phases import IMPORT
from ..phases.guards import check_deadline
from .stream import LocalReplicationError, Summary, replicate_local

if TYPE_CHECKING:
    from ..context import MigrationContext


def check_no_lambda_running(ctx: MigrationContext) -> None:
    """Refuse to race a live Lambda replicator: two writers of one stream can interleave an older image
    over a newer one. The emulator runs enabled mappings as Lambda does, so the check holds there too."""
    lam = ctx.source.client("lambda")
    mappings = lam.list_event_source_mappings(FunctionName=ctx.config.replicator_name).get("EventSourceMappings", [])
    live = [mp for mp in mappings if mp.get("State") in ("Enabled", "Enabling", "Updating")]
    if live:
        uuid = live[0].get("UUID")
        raise MigratorError(
            f"the replicator's event source mapping {uuid} is {live[0].get('State')}, so Lambda is already "
            "replaying the stream and the local runner would race it; let Lambda replicate (`migrator status` "
            f"shows its progress), or disable the mapping first (`aws lambda update-event-source-mapping --uuid "
            f"{uuid} --no-enabled`)"
        )


def run_local(ctx: MigrationContext, *, until_caught_up: bool, stop: threading.Event | None = None) -> Summary:
    """Replay the source stream into the target here, checkpointing per shard in the cache directory, under
    the migration's lock (another mutating run is refused at once)."""
    with ctx.lock.held("migrator replicate --local"):
        return _run_local(ctx, until_caught_up=until_caught_up, stop=stop)


def _run_local(ctx: MigrationContext, *, until_caught_up: bool, stop: threading.Event | None) -> Summary:
    if not IMPORT.done(ctx):
        raise MigratorError(f"replication needs the target table: run phase {IMPORT.number} first")
    stream_arn = ctx.state.section("stream").get("arn")
    if not stream_arn:
        raise MigratorError("the source stream is not recorded; run phase 1 first")
    check_deadline(ctx)
    check_no_lambda_running(ctx)
    with ctx.report.live() as board:
        task = board.add("replicating")
        try:
            summary = replicate_local(
                ctx.source.client("dynamodbstreams"),
                ctx.target.client("dynamodb"),
                stream_arn,
                ctx.config.target_table_name,
                ctx.state_dir / "local-replicator" / "checkpoints.json",
                until_caught_up=until_caught_up,
                progress=lambda p: task.update(f"replicating: {p}"),
                stop=stop,
                retry=ctx.retry,
            )
        except LocalReplicationError as err:
            raise MigratorError(str(err)) from None
    ctx.state.update(
        "replication",
        local_last_run=iso(now()),
        local_summary=str(summary),
        local_lag_s=summary.lag_s,
        local_caught_up=summary.caught_up,
    )
    return summary
