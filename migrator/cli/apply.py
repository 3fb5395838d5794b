"""`migrator apply --phase N` and `migrator phases`: run a phase; list the phases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..phases import PHASES, ApplyOptions, check_options
from ..phases import phase as find_phase
from ..phases.runner import PhaseRunner
from .app import ConfigOption, JsonOption, PhaseOption, app, context, guarded


@app.command()
@guarded
def apply(
    phase: PhaseOption,
    config: ConfigOption = Path("migration.yaml"),
    enable_stream: Annotated[
        bool, typer.Option("--enable-stream", help="Phase 1: enable a NEW_AND_OLD_IMAGES stream on the source.")
    ] = False,
    enable_pitr: Annotated[
        bool, typer.Option("--enable-pitr", help="Phase 1: enable point-in-time recovery on the source.")
    ] = False,
    abandon: Annotated[
        bool,
        typer.Option("--abandon", help="Phase 6 after a rollback: clean up, keeping the source as the live table."),
    ] = False,
) -> None:
    """Run a phase: Terraform in the phase's account, then its data step."""
    options = ApplyOptions(enable_stream=enable_stream, enable_pitr=enable_pitr, abandon=abandon)
    check_options(find_phase(phase), options)  # before any AWS call
    PhaseRunner(context(config)).apply(phase, options)


@app.command()
def phases(as_json: JsonOption = False) -> None:
    """List the phases of a migration, in order (what `make phase-N` runs)."""
    if as_json:
        rows = [
            {
                "phase": p.number,
                "name": p.name,
                "accounts": list(p.accounts),
                "roots": list(p.roots),
                "summary": p.summary,
            }
            for p in PHASES
        ]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    for p in PHASES:
        sys.stdout.write(f"  make phase-{p.number}   {p.name:<10} {' + '.join(p.roots):<16} {p.summary}\n")
