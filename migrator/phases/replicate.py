"""Phase 4, replicate (source): Terraform enables the event source mapping; the replicator replays every
change since the stream began into the target (invariant 1 of docs/architecture.md: from
``TRIM_HORIZON``, at or before ``ExportTime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..clock import iso, now
from ..errors import MigratorError
from .base import Account, Facts, Phase
from .direction import mapping_enabled

if TYPE_CHECKING:
    from ..context import MigrationContext


def report_replication(ctx: MigrationContext) -> None:
    """Record and say the mapping's state, and how catch-up is watched."""
    uuid = ctx.state.section("source_outputs").get("event_source_mapping_uuid")
    if not uuid:
        ctx.report.note("no event source mapping in the outputs")
        return
    mapping = ctx.source.client("lambda").get_event_source_mapping(UUID=uuid)
    ctx.state.update("replication", mapping_state=mapping.get("State"), checked_at=iso(now()))
    ctx.report.done(f"event source mapping {uuid} is {mapping.get('State')}")
    ctx.report.info(
        "the replicator catches up through Lambda: watch it with `migrator status`; verify with `migrator verify`"
    )


class Replicate(Phase):
    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        replicator = variables.get("replicator")
        if not isinstance(replicator, dict):
            raise MigratorError("the replicator is not deployed yet; run phase 2 first")
        # Enabled from phase 4 on while the data flows forward; `migrator cutover` turns it off (recorded).
        replicator["enabled"] = mapping_enabled(ctx.state.section("cutover"), "forward")

    def after_terraform(self, ctx: MigrationContext) -> None:
        report_replication(ctx)

    def infer(self, facts: Facts) -> str:
        return {None: "unknown", "Enabled": "applied"}.get(facts.replicator["mapping"], "not started")


REPLICATE = Replicate(
    number=4,
    name="replicate",
    summary="event source mapping enabled; catch-up reported",
    accounts=("source",),
    roots=("source",),
    within_retention=True,
)
