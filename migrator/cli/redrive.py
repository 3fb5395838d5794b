"""`migrator redrive [--dry-run] [--json]`: fix the keys of the batches the replicator gave up on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..aws.s3 import REDRIVEN_PREFIX
from ..dataplane.redrive import RedriveResult
from ..dataplane.redrive import redrive as run_redrive
from .app import ConfigOption, JsonOption, app, context, err_console, guarded


@app.command()
@guarded
def redrive(
    config: ConfigOption = Path("migration.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be fixed; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Fix in the target every key of the batches the replicator gave up on, from the current source."""
    ctx = context(config)
    result = run_redrive(ctx, dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    else:
        for line in summary(result, result.bucket):
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    if not result.ok:
        raise typer.Exit(1)


def summary(result: RedriveResult, bucket: str) -> list[str]:
    """A few lines for the operator; the last one says what to do when something is left."""
    verb = "would write" if result.dry_run else "wrote"
    lines = [
        f"{result.objects} failure record(s), {result.keys} distinct key(s): {verb} {result.written} current "
        f"source item(s), {'would delete' if result.dry_run else 'deleted'} {result.deleted} key(s)"
        + ("" if result.dry_run else f", moved {result.moved} record(s) under s3://{bucket}/{REDRIVEN_PREFIX}")
    ]
    for obj in result.unrecoverable_objects:
        lines.append(f"unrecoverable: s3://{bucket}/{obj['object']}: {obj['reason']}")
    for failed in result.failed_keys:
        lines.append(f"failed: {json.dumps(failed['key'], sort_keys=True)}: {failed['reason']}")
    if result.unrecoverable:
        lines.append(
            f"{result.unrecoverable} failure record(s) could not be traced to their keys and were left in place; "
            "run `migrator verify --repair` to fix the target, then delete those objects"
        )
    if result.failed:
        lines.append(
            f"{result.failed} key(s) could not be fixed and their records were left in place; "
            "fix the cause shown above and run `migrator redrive` again"
        )
    return lines
