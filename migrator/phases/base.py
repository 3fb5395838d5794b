"""What a phase is: its accounts, its Terraform roots, its share of the roots' variables, its data steps,
and how its state is read from AWS when no record says it.

Each phase is one module of this package declaring one :class:`Phase`; ``migrator.phases.PHASES`` lists
them in order, once. The runner (:mod:`.runner`) is the only orchestrator, and nothing outside this
package compares phase numbers: the CLI, status, the cutover gate, the Makefile and plan review read the
list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Account

if TYPE_CHECKING:
    from pathlib import Path

    from ..context import MigrationContext
    from ..infra.terraform import TerraformRunner
    from ..readmodels.views import ExportView, ImportView, ReplicatorView

__all__ = ["Account", "ApplyOptions", "Facts", "Phase"]


@dataclass(frozen=True)
class ApplyOptions:
    """What the operator asked for on the command line of ``migrator apply``."""

    enable_stream: bool = False  # phase 1: enable a NEW_AND_OLD_IMAGES stream on the source
    enable_pitr: bool = False  # phase 1: enable point-in-time recovery on the source
    abandon: bool = False  # phase 6: clean up after a rollback, keeping the source as the live table


class Facts(Protocol):
    """What status read from the accounts, for a phase to tell its state without a local record."""

    @property
    def export(self) -> ExportView: ...

    @property
    def import_(self) -> ImportView: ...

    @property
    def replicator(self) -> ReplicatorView: ...

    def export_bucket(self) -> str | None:
        """``present``, ``absent``, or None when it could not be read (asked only when needed)."""


@dataclass(frozen=True)
class Phase:
    """One step of a migration. Subclasses override the hooks they need; the defaults do nothing."""

    number: int
    name: str
    summary: str
    #: The accounts the phase works in; the caller's identity is checked in each before anything else.
    accounts: tuple[Account, ...]
    #: The Terraform roots it applies, in order (``terraform/<root>``, applied in that account).
    roots: tuple[Account, ...]
    #: Apply again until the plan is empty (an imported table gets its stream, TTL … on the next apply).
    converge: bool = False
    #: Its roots take nothing from each other (their variables come from the configuration and earlier phases),
    #: so they are applied at the same time, each by its own Terraform; otherwise one after the other.
    roots_together: bool = False
    #: Refused once the stream-retention deadline has passed (its work needs records still in the stream).
    within_retention: bool = False
    #: Runs after the cutover (cleanup), so the cutover gate does not wait for it.
    after_cutover: bool = False

    def done(self, ctx: MigrationContext) -> bool:
        """Recorded as done in the migration's state."""
        return ctx.state.phase_status(self.number) == "done"

    def variables(self, ctx: MigrationContext, root: Account, variables: dict[str, Any]) -> None:
        """Add this phase's share of ``root``'s tfvars context (for this phase and every later run)."""

    def check(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        """Read-only checks that refuse bad input before Terraform is even initialised (changes nothing)."""

    def before_terraform(self, ctx: MigrationContext, options: ApplyOptions) -> None:
        """The data step before Terraform (preparations that may change things)."""

    def reconcile(self, ctx: MigrationContext, root: Account, terraform: TerraformRunner, var_file: Path) -> None:
        """Before ``root`` is planned: bring its Terraform state back in line with what exists (a tainted or
        unrecorded table an interrupted run left behind), so the plan never replaces anything."""

    def applied(self, ctx: MigrationContext, root: Account, changes: list[tuple[str, str]]) -> None:
        """After ``root`` was applied: the ``(kind, address)`` changes of the plans applied to it."""

    def after_terraform(self, ctx: MigrationContext) -> None:
        """The data step after Terraform (the export, the import check …)."""

    def infer(self, facts: Facts) -> str:
        """The phase's state from what exists in AWS: not started | applied | in progress | done | failed
        | unknown (for a machine without the local record)."""
        return "unknown"
