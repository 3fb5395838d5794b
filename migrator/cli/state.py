"""`migrator state show [--json]` and `migrator unlock --force`: the migration document and its lock."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax

from ..errors import MigratorError
from .app import ConfigOption, JsonOption, app, context, err_console, guarded

state_app = typer.Typer(help="The migration document in the state bucket.", no_args_is_help=True)
app.add_typer(state_app, name="state")


@state_app.command("show")
@guarded
def show(config: ConfigOption = Path("migration.yaml"), as_json: JsonOption = False) -> None:
    """Print the migration document (what the phases recorded), as stored in the state bucket."""
    ctx = context(config)
    document = ctx.state.data
    text = json.dumps(document, indent=None if as_json else 2, sort_keys=True, default=str)
    if as_json:
        sys.stdout.write(text + "\n")
        return
    err_console.print(f"s3://{ctx.config.state_bucket}/{ctx.config.state_key}", highlight=False, markup=False)
    if not document:
        err_console.print("(no document yet: phase 1 writes the first one)")
        return
    typer.echo(Syntax(text, "json", word_wrap=True).code)


@app.command()
@guarded
def unlock(
    config: ConfigOption = Path("migration.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Remove the lock even though a run may hold it.")] = False,
) -> None:
    """Remove the migration's lock that a killed run left behind (says whose it was)."""
    if not force:
        raise MigratorError(
            "unlock removes the lock of whatever run holds it; make sure that run is gone (`migrator status` shows "
            "the holder), then run `migrator unlock --force`"
        )
    ctx = context(config)
    holder = ctx.lock.force_release()
    if holder is None:
        err_console.print("the migration was not locked; nothing was removed", highlight=False)
        return
    err_console.print(f"removed the lock of {holder.describe()}", highlight=False, markup=False)
