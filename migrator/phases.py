"""The phases of a migration, declared once, as data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Account = Literal["source", "target"]


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    account: Account  # the account whose Terraform root this phase applies
    root: str  # directory under terraform/
    template: str  # Jinja template under templates/
    summary: str


PHASES: tuple[Phase, ...] = (
    Phase(
        1,
        "prepare",
        "target",
        "target",
        "target.tfvars.json.j2",
        "preflight of the source table; export bucket and writer role in the target account",
    ),
    Phase(
        2,
        "export",
        "source",
        "source",
        "source.tfvars.json.j2",
        "replicator deployed disabled at TRIM_HORIZON; export of the source table to the bucket",
    ),
    Phase(
        3,
        "import",
        "target",
        "target",
        "target.tfvars.json.j2",
        "target table created from the export with import_table; counts compared",
    ),
    Phase(
        4, "replicate", "source", "source", "source.tfvars.json.j2", "event source mapping enabled; catch-up reported"
    ),
)


def phase(number: int) -> Phase:
    for p in PHASES:
        if p.number == number:
            return p
    valid = ", ".join(str(p.number) for p in PHASES)
    from .errors import MigratorError

    raise MigratorError(f"there is no phase {number}; choose one of {valid}")
