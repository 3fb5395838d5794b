"""The phases of a migration, declared once, in order.

Each phase is a module of this package (``prepare``, ``export``, ``import_table``, ``replicate``,
``fallback``, ``cleanup``);
:data:`PHASES` is the one list the runner, the CLI, status, the cutover gate, the Makefile (through
``migrator phases``) and plan review read. Adding a phase is one module and one entry here.
"""

from __future__ import annotations

from ..errors import MigratorError
from .base import Account, ApplyOptions, Phase
from .cleanup import CLEANUP
from .export import EXPORT
from .fallback import FALLBACK
from .import_table import IMPORT
from .prepare import PREPARE
from .replicate import REPLICATE

PHASES: tuple[Phase, ...] = (PREPARE, EXPORT, IMPORT, REPLICATE, FALLBACK, CLEANUP)

__all__ = [
    "CLEANUP",
    "EXPORT",
    "FALLBACK",
    "IMPORT",
    "PHASES",
    "PREPARE",
    "REPLICATE",
    "Account",
    "ApplyOptions",
    "Phase",
    "check_options",
    "earlier",
    "phase",
]


def phase(number: int) -> Phase:
    for p in PHASES:
        if p.number == number:
            return p
    valid = ", ".join(str(p.number) for p in PHASES)
    raise MigratorError(f"there is no phase {number}; choose one of {valid}")


def earlier(p: Phase) -> tuple[Phase, ...]:
    """The phases that come before ``p`` in the list (each must be done before ``p`` runs)."""
    return PHASES[: PHASES.index(p)]


def check_options(p: Phase, options: ApplyOptions) -> None:
    """Refuse an option of ``migrator apply`` that the phase does not take (pure: before any AWS call)."""
    if options.abandon and p is not CLEANUP:
        raise MigratorError(
            f"--abandon belongs to phase {CLEANUP.number} ({CLEANUP.name}) after a rollback, not to phase "
            f"{p.number} ({p.name}); run it without --abandon"
        )
