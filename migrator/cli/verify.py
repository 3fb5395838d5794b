"""`migrator verify [--json] [--repair]`: compare the tables; exit 0 only when they are equal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..dataplane.verify import ScanEngine, VerifyResult
from ..dataplane.verify.run import run_verify
from .app import ConfigOption, JsonOption, app, context, err_console, guarded

COLUMNS = ("source_items", "target_items", "missing", "different", "extraneous")


def result_table(result: VerifyResult, title: str) -> Table:
    data = result.to_json()
    table = Table(title=title)
    for name in COLUMNS:
        table.add_column(name, justify="right")
    table.add_row(*(str(data[n]) for n in COLUMNS))
    return table


@app.command()
@guarded
def verify(
    config: ConfigOption = Path("migration.yaml"),
    as_json: JsonOption = False,
    repair: Annotated[bool, typer.Option("--repair", help="Fix each difference from the source.")] = False,
    segments: Annotated[int, typer.Option("--segments", min=1, max=1000)] = 8,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 8,
) -> None:
    """Compare the source and target tables completely; exit 0 only when they are equal."""
    ctx = context(config)
    run = run_verify(ctx, repair=repair, engine=ScanEngine(segments=segments, workers=workers, retry=ctx.retry))
    if as_json:
        sys.stdout.write(json.dumps(run.result.to_json(), sort_keys=True) + "\n")
    else:
        err_console.print(result_table(run.first, "verify"))
        if run.repair is not None and run.after_repair is not None:
            err_console.print(f"repair: {run.repair}")
            err_console.print(result_table(run.after_repair, "verify after repair"))
    if not run.result.clean:
        raise typer.Exit(1)
