"""The two directions of replication, and their event source mappings as AWS shows them.

**Forward** replays the source table's stream into the target table (the replicator of phase 2, in the
source account); **reverse** replays the target table's stream into the source table (the way back of
the fallback phase, in the target account). Invariant 9 (docs/architecture.md): they are never enabled
together. Every command that enables one reads the other's mapping from AWS first (not only the
recorded direction) and refuses while it is enabled or changing.

The migration document's ``cutover`` section records the direction traffic was last moved to::

    {"direction": "forward" | "reverse",
     "history": [{"action": "cutover" | "rollback", "at": "<iso>", "by": "<user@host>"}]}

and Terraform's variables follow it (``phases.direction``), so a later plan keeps what the switch set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from ..aws.errors import is_not_found
from ..errors import MigratorError

if TYPE_CHECKING:
    from ..aws.session import AccountSession
    from ..context import MigrationContext

Name = Literal["forward", "reverse"]

#: Mapping states in which records may still be delivered (Lambda's ``State`` values).
ACTIVE = frozenset({"Enabled", "Enabling", "Updating", "Creating", "Disabling"})


@dataclass(frozen=True)
class Direction:
    """One direction: the stream it reads, the table it writes, where its mapping and failures live."""

    name: Name
    #: The account and table whose stream is replayed (the replicator's own account).
    reads: Literal["source", "target"]
    reads_table: str
    #: The account and table the replicator writes into.
    writes: Literal["source", "target"]
    writes_table: str
    function: str
    failure_bucket: str
    #: Where the Terraform outputs of the mapping's root are recorded, and the output naming its UUID.
    outputs_section: str
    uuid_output: str

    def session(self, ctx: MigrationContext) -> AccountSession:
        """The account of the stream, the function, the mapping and the failure bucket."""
        return ctx.session(self.reads)

    def write_session(self, ctx: MigrationContext) -> AccountSession:
        return ctx.session(self.writes)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.reads} → {self.writes})"


def forward(ctx: MigrationContext) -> Direction:
    c = ctx.config
    return Direction(
        name="forward",
        reads="source",
        reads_table=c.source_table_name,
        writes="target",
        writes_table=c.target_table_name,
        function=c.replicator_name,
        failure_bucket=c.failure_bucket_name,
        outputs_section="source_outputs",
        uuid_output="event_source_mapping_uuid",
    )


def reverse(ctx: MigrationContext) -> Direction:
    c = ctx.config
    return Direction(
        name="reverse",
        reads="target",
        reads_table=c.target_table_name,
        writes="source",
        writes_table=c.source_table_name,
        function=c.reverse_replicator_name,
        failure_bucket=c.reverse_failure_bucket_name,
        outputs_section="target_outputs",
        uuid_output="reverse_event_source_mapping_uuid",
    )


def other(ctx: MigrationContext, d: Direction) -> Direction:
    return reverse(ctx) if d.name == "forward" else forward(ctx)


def stream_arn(ctx: MigrationContext, d: Direction) -> str:
    """The current stream of the table ``d`` reads (DescribeTable's ``LatestStreamArn``)."""
    table = d.session(ctx).client("dynamodb").describe_table(TableName=d.reads_table)["Table"]
    arn = table.get("LatestStreamArn")
    if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled", True):
        raise MigratorError(
            f"the {d.reads} table {d.reads_table} has no stream, so the {d.name} replicator has nothing to read; "
            "check the table's stream settings"
        )
    return str(arn)


def find_mapping(ctx: MigrationContext, d: Direction, client: Any | None = None) -> dict[str, Any] | None:
    """The direction's mapping: by the UUID in the recorded outputs, else the one of its function (or None)."""
    lam = client or d.session(ctx).client("lambda")
    uuid = ctx.state.section(d.outputs_section).get(d.uuid_output)
    if uuid:
        try:
            return dict(lam.get_event_source_mapping(UUID=uuid))
        except ClientError as err:
            if not is_not_found(err):
                raise
    try:
        found = lam.list_event_source_mappings(FunctionName=d.function).get("EventSourceMappings", [])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    return dict(found[0]) if found else None


def mapping_state(mapping: Mapping[str, Any] | None) -> str:
    return "absent" if mapping is None else str(mapping.get("State", "unknown"))


def current_direction(forward_state: str | None, reverse_state: str | None) -> str:
    """forward | reverse | none | both, from the two mappings' states as AWS shows them. Pure."""
    f = forward_state in ACTIVE
    r = reverse_state in ACTIVE
    if f and r:
        return "both"
    return "forward" if f else "reverse" if r else "none"


def set_enabled(
    ctx: MigrationContext,
    d: Direction,
    enabled: bool,
    *,
    timeout_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Enable or disable ``d``'s mapping and wait until Lambda reports it ``Enabled`` / ``Disabled``.

    Enabling first reads the other direction's mapping from AWS and refuses while it is enabled or
    changing (invariant 9)."""
    lam = d.session(ctx).client("lambda")
    mapping = find_mapping(ctx, d, lam)
    if mapping is None:
        raise MigratorError(
            f"the {d.name} replicator has no event source mapping in the {d.reads} account; "
            "apply the phase that deploys it first (`migrator phases` lists them)"
        )
    if enabled:
        refuse_if_active(ctx, other(ctx, d))
    want = "Enabled" if enabled else "Disabled"
    if mapping.get("State") != want:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)
    deadline = time.monotonic() + timeout_s
    while True:
        mapping = dict(lam.get_event_source_mapping(UUID=mapping["UUID"]))
        if mapping.get("State") == want:
            return mapping
        if time.monotonic() > deadline:
            raise MigratorError(
                f"the {d.name} event source mapping {mapping['UUID']} is still {mapping.get('State')} after "
                f"{timeout_s:g} s, not {want}; check it in the Lambda console and run the command again"
            )
        sleep(1.0)


def refuse_if_active(ctx: MigrationContext, d: Direction) -> None:
    """Refuse (one sentence) while ``d``'s mapping may deliver records, as AWS shows it now."""
    state = mapping_state(find_mapping(ctx, d))
    if state in ACTIVE:
        raise MigratorError(
            f"the {d.name} event source mapping is {state}, so enabling the other direction would replicate both "
            f"ways at once; disable the {d.name} mapping first (`migrator status` shows both)"
        )
