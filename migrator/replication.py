"""`migrator replicate --local`: the local stream driver wired to the migration's accounts."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .errors import MigratorError
from .state import iso, now

if TYPE_CHECKING:
    from .migration import Migration


def check_no_lambda_running(m: Migration) -> None:
    """Refuse to race a live Lambda replicator: two writers of one stream can interleave an older image
    over a newer one. An emulator stores mappings but never runs them, so there the check is moot."""
    if m.config.endpoint_url:
        return
    lam = m.source.client("lambda")
    mappings = lam.list_event_source_mappings(FunctionName=m.config.replicator_name).get("EventSourceMappings", [])
    live = [mp for mp in mappings if mp.get("State") in ("Enabled", "Enabling", "Updating")]
    if live:
        raise MigratorError(
            f"the replicator's event source mapping {live[0].get('UUID')} is {live[0].get('State')}, so Lambda is "
            "already replaying the stream; the local runner would race it, so use one or the other"
        )


def run_local(m: Migration, *, until_caught_up: bool, stop: threading.Event | None = None) -> Any:
    from .local_replicator import LocalReplicationError, replicate_local

    if m.state.phase_status(3) != "done":
        raise MigratorError("replication needs the target table: run phase 3 first")
    stream_arn = m.state.section("stream").get("arn")
    if not stream_arn:
        raise MigratorError("the source stream is not recorded; run phase 1 first")
    m.check_deadline()
    check_no_lambda_running(m)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=m.console, transient=True
    ) as bar:
        task = bar.add_task("replicating", total=None)

        def progress(p: Any) -> None:
            bar.update(task, description=f"replicating: {p}")

        try:
            summary = replicate_local(
                m.source.client("dynamodbstreams"),
                m.target.client("dynamodb"),
                stream_arn,
                m.config.target_table_name,
                m.state_dir / "local-replicator" / "checkpoints.json",
                until_caught_up=until_caught_up,
                progress=progress,
                stop=stop,
            )
        except LocalReplicationError as err:
            raise MigratorError(str(err)) from None
    m.state.update(
        "replication",
        local_last_run=iso(now()),
        local_summary=str(summary),
        local_lag_s=summary.lag_s,
        local_caught_up=summary.caught_up,
    )
    return summary
