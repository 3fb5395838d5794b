"""`migrator demo`: a whole migration on the embedded emulator (:mod:`migrator.dev.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, guarded


@app.command()
@guarded
def demo(
    items: Annotated[int, typer.Option("--items", min=100, help="Items in the demo's source table.")] = 2500,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the demo writes its config and state.")
    ] = None,
) -> None:
    """Run a whole migration on an embedded emulator with two accounts, under live writes."""
    from ..dev.demo import run_demo

    if not run_demo(items=items, workdir=workdir):
        raise typer.Exit(1)
