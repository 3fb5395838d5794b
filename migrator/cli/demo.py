"""`migrator demo`: a whole migration on the embedded emulator (:mod:`migrator.dev.demo`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOption, app, guarded


@app.command()
@guarded
def demo(
    items: Annotated[int, typer.Option("--items", min=100, help="Items in the demo's source table.")] = 2500,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the demo writes its config and state.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a whole migration on an embedded emulator with two accounts, under live writes.

    stdout gets one line at the end: the final `migrator verify --json` object, or with --json the whole
    summary (the verify, the live writes, the switches and every step's time, Terraform's runs and its
    slowest resources)."""
    from ..dev.demo import run_demo

    result = run_demo(items=items, workdir=workdir)
    line = result.to_json() if as_json else result.verify
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()
    if not result.ok:
        raise typer.Exit(1)
