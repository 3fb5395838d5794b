"""`migrator cutover --check [--json]`: the cutover gate (:mod:`migrator.readmodels.cutover`), rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ..readmodels.cutover import check_gate
from .app import ConfigOption, JsonOption, app, context, err_console, guarded


@app.command()
@guarded
def cutover(
    config: ConfigOption = Path("migration.yaml"),
    check: Annotated[bool, typer.Option("--check", help="Only check the gate (the only mode for now).")] = True,
    max_lag: Annotated[float, typer.Option("--max-lag", help="Largest replication lag, in seconds.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """The cutover gate: exit 0 only when caught up, no failures wait, and verify is clean."""
    gate = check_gate(context(config), max_lag_s=max_lag)
    if as_json:
        sys.stdout.write(json.dumps({"open": gate.open, "unmet": gate.unmet, **gate.facts}, default=str) + "\n")
    elif gate.open:
        err_console.print("[bold green]cutover gate open[/]: replicator caught up, no failures waiting, verify clean")
    else:
        for reason in gate.unmet:
            err_console.print(Text.assemble(("✗", "red"), " ", reason), highlight=False)
    if not gate.open:
        raise typer.Exit(1)
