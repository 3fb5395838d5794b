"""`migrator handover`: the target table leaves migrator's Terraform, never destroyed, and is written out as
Terraform for the application's own repository (a plain ``aws_dynamodb_table`` and an ``import`` block).

The steps, in order: the address and the output file are checked (before any AWS call); the handover is
refused unless every phase of :data:`~migrator.phases.PHASES` is done and the table was not handed over
already; the caller's identity is checked in the target and state accounts; then, under the migration
lock, the table is read from the target account, the file is created (atomically, never replacing a
file), the table is removed from migrator's target workspace, and the handover is recorded.

**State removal, not a ``removed`` block.** The table leaves migrator's state by ``terraform state rm
module.target_table[0].aws_dynamodb_table.this`` in the migration's workspace. A ``removed { from = …
lifecycle { destroy = false } }`` block would have to be written into ``terraform/target``, which is one
root shared by the workspaces of every migration: the block would then apply to all of them, making every
other migration's next apply forget its table too (and a root that both declares ``module.target_table``
and a ``removed`` block for the same address is refused by Terraform). State removal acts on this
workspace alone. The record in the migration document then makes the target root's ``table`` variable
null (``count = 0``), so no later plan in this workspace plans anything for the table; the table guard
of every apply (no plan destroying or replacing a DynamoDB table is applied) stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..aws.errors import is_not_found
from ..clock import iso, now
from ..config import MigrationConfig
from ..errors import MigratorError
from ..files import create_text
from ..infra.handover import TableFacts, render, resource_name
from ..lock import me
from . import PHASES
from .guards import check_identity
from .import_table import HANDOVER_SECTION, TABLE_ADDRESS, handed_over
from .runner import PhaseRunner

if TYPE_CHECKING:
    from ..context import MigrationContext


@dataclass(frozen=True)
class Handover:
    """What a handover did: the file written, the address and the table."""

    path: Path
    address: str
    table: str


# Checks that need no AWS call ------------------------------------------------------------------------------
def handover_path(config: MigrationConfig, address: str, out: Path) -> Path:
    """``out/<target table>.tf``, after checking the address; refused when that file exists (never
    overwritten) or ``out`` is not a folder."""
    resource_name(address)
    path = out / f"{config.target_table_name}.tf"
    if out.exists() and not out.is_dir():
        raise MigratorError(f"{out} is not a folder; give --out a folder to write {path.name} into")
    if path.exists() or path.is_symlink():
        raise MigratorError(
            f"{path} already exists and migrator never overwrites a file; move it away or choose another --out"
        )
    return path


def check_ready(ctx: MigrationContext) -> None:
    """Refused once handed over, and until every phase of the list is done."""
    record = handed_over(ctx)
    if record:
        raise MigratorError(
            f"the table {record.get('table')} was already handed over at {record.get('at')} as {record.get('address')} "
            f"(written to {record.get('file')}); it is the application's Terraform's now, so there is nothing to do"
        )
    pending = [p for p in PHASES if not p.done(ctx)]
    if pending:
        p = pending[0]
        raise MigratorError(
            f"the table is handed over only when every phase is done, and phase {p.number} ({p.name}) is "
            f"{ctx.state.phase_status(p.number)}; run `migrator apply --phase {p.number}` first (nothing was changed)"
        )


# Reading the table -------------------------------------------------------------------------------------------
def read_table(ddb: Any, name: str, account_id: str) -> TableFacts:
    """The table's description, TTL, continuous backups and every page of its tags."""
    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ClientError as err:
        if is_not_found(err):
            raise MigratorError(
                f"the target table {name} does not exist in the target account {account_id}; there is nothing to "
                "hand over"
            ) from None
        raise
    ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription") or {}
    backups = ddb.describe_continuous_backups(TableName=name).get("ContinuousBackupsDescription") or {}
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": table["TableArn"]}
    while True:
        page = ddb.list_tags_of_resource(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return TableFacts(table=table, ttl=ttl, backups=backups, tags=tags)


def header(ctx: MigrationContext, at: str) -> str:
    c = ctx.config
    return (
        f"Handed over by migrator (migration {c.migration}) at {at}: the DynamoDB table {c.target_table_name}\n"
        f"in account {c.target.account_id}, {c.target.region}, with its settings as they were then.\n"
        "Commit this file to the application's Terraform (a root whose provider is in that account and\n"
        "region) and run `terraform plan` there: 1 to import, 0 to add, 0 to change, 0 to destroy.\n"
        "After that apply the import block has done its work and may be deleted."
    )


# The operation -------------------------------------------------------------------------------------------------
def hand_over(ctx: MigrationContext, address: str, out: Path, runner: PhaseRunner | None = None) -> Handover:
    """Write the table out as Terraform for the application and remove it from migrator's target workspace
    (state removal, see the module docstring), under the migration lock; recorded in section ``handover``."""
    c = ctx.config
    path = handover_path(c, address, out)
    check_ready(ctx)
    check_identity(ctx, "target")
    check_identity(ctx, c.state.account)
    runner = runner or PhaseRunner(ctx)
    with ctx.lock.held(f"migrator handover --address {address}"):
        check_ready(ctx)  # again, now that no other run can change the document
        terraform = runner.terraform("target")  # a missing Terraform or provider fails here, before any change
        at = iso(now())
        facts = read_table(ctx.target.client("dynamodb"), c.target_table_name, c.target.account_id)
        try:
            create_text(path, render(address, facts, header=header(ctx, at)))
        except FileExistsError:
            raise MigratorError(
                f"{path} already exists and migrator never overwrites a file; move it away or choose another --out"
            ) from None
        try:
            if TABLE_ADDRESS in {r.address for r in terraform.resources()}:
                with ctx.report.step(f"terraform state rm {TABLE_ADDRESS} (workspace {c.migration})"):
                    terraform.state_rm(TABLE_ADDRESS)
            holder = me("migrator handover")
            ctx.state.replace(
                HANDOVER_SECTION,
                {
                    "address": address,
                    "file": str(path.resolve()),
                    "table": c.target_table_name,
                    "table_arn": facts.table["TableArn"],
                    "at": at,
                    "by": f"{holder.user}@{holder.host}",
                },
            )
        except BaseException:
            path.unlink(missing_ok=True)  # ours, just written: a run again starts afresh
            raise
    ctx.report.done(
        f"table {c.target_table_name} handed over as {address}: it is out of migrator's state, not destroyed"
    )
    return Handover(path=path, address=address, table=c.target_table_name)
