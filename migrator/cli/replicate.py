"""`migrator replicate --local [--until-caught-up]`: replay the source stream here, with the replicator core."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..dataplane.replicate import run_local
from ..errors import MigratorError
from ..phases import REPLICATE
from .app import ConfigOption, app, context, err_console, guarded


@app.command()
@guarded
def replicate(
    config: ConfigOption = Path("migration.yaml"),
    local: Annotated[bool, typer.Option("--local", help="Read the stream here instead of in Lambda.")] = False,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Return once every shard is read to its current end.")
    ] = False,
) -> None:
    """Replay the source stream into the target table with the replicator core."""
    if not local:
        raise MigratorError(
            f"only --local replication runs from the CLI; the Lambda replicates once phase {REPLICATE.number} is done"
        )
    summary = run_local(context(config), until_caught_up=until_caught_up)
    err_console.print(str(summary), highlight=False, markup=False)
