"""`migrator handover --address aws_dynamodb_table.NAME [--out DIR]`: the target table handed to the
application's own Terraform (:mod:`migrator.phases.handover`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..context import MigrationContext
from ..phases.handover import hand_over, handover_path
from .app import ConfigOption, app, err_console, guarded
from .progress import RichReporter


@app.command()
@guarded
def handover(
    address: Annotated[
        str,
        typer.Option(
            "--address", help="The table's address in the application's Terraform, such as aws_dynamodb_table.orders."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The folder to write <table>.tf into (never overwrites a file).")
    ] = Path("."),
    config: ConfigOption = Path("migration.yaml"),
) -> None:
    """Hand the target table to the application's Terraform: write it out with an import block, and remove it
    from migrator's state without destroying it (once every phase is done)."""
    ctx = MigrationContext.load(config, RichReporter(err_console))
    handover_path(ctx.config, address, out)  # the address and the file, before any AWS call
    ctx.check_fingerprint()
    done = hand_over(ctx, address, out)
    err_console.print(
        f"next: commit {done.path} to the application's Terraform repository and run `terraform plan` there, "
        f"which must show 1 to import ({done.address}) and 0 to add, 0 to change, 0 to destroy; then apply it",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
