"""`migrator cutover [--check] [--json]` and `migrator rollback [--json]`: the gate
(:mod:`migrator.readmodels.cutover`) and the switch (:mod:`migrator.dataplane.switch`), rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ..dataplane.switch import Action, SwitchResult, switch
from ..readmodels.cutover import check_gate
from .app import ConfigOption, JsonOption, app, context, err_console, guarded

TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Seconds to wait for the replicator to drain before giving up."),
]


@app.command()
@guarded
def cutover(
    config: ConfigOption = Path("migration.yaml"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Only check the gate (caught up, no failures, verify clean); change nothing."),
    ] = False,
    max_lag: Annotated[
        float, typer.Option("--max-lag", help="--check: the largest age of a change not yet replicated, in seconds.")
    ] = 60.0,
    timeout: TimeoutOption = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Move the live table to the target, after the application stopped writing to the source: drain the
    forward replicator, redrive, verify, forward off, reverse on. With --check, only the gate."""
    ctx = context(config)
    if not check:
        _switched(switch(ctx, "cutover", timeout_s=timeout), as_json, ctx.config.target_table_name, "target")
        return
    gate = check_gate(ctx, max_lag_s=max_lag)
    if as_json:
        sys.stdout.write(json.dumps({"open": gate.open, "unmet": gate.unmet, **gate.facts}, default=str) + "\n")
    elif gate.open:
        err_console.print("[bold green]cutover gate open[/]: replicator caught up, no failures waiting, verify clean")
    else:
        for reason in gate.unmet:
            err_console.print(Text.assemble(("✗", "red"), " ", reason), highlight=False)
    if not gate.open:
        raise typer.Exit(1)


@app.command()
@guarded
def rollback(
    config: ConfigOption = Path("migration.yaml"),
    timeout: TimeoutOption = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Move the live table back to the source, after the application stopped writing to the target: drain
    the reverse replicator, redrive, verify, reverse off, forward on."""
    ctx = context(config)
    _switched(switch(ctx, "rollback", timeout_s=timeout), as_json, ctx.config.source_table_name, "source")


def _switched(result: SwitchResult, as_json: bool, table: str, side: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    action: Action = result.action
    err_console.print(
        f"[bold green]{action} done[/] in {result.seconds:.1f} s: the application may now write to the {side} "
        f"table {table}; replication runs {result.direction}",
        highlight=False,
    )
