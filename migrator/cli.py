"""The ``migrator`` command line. Thin commands over plain functions; one sentence per failure."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)
from rich.console import Console

from .config import load_config
from .errors import MigratorError

app = typer.Typer(
    name="migrator",
    help="Move a live DynamoDB table into another AWS account with zero downtime and no data loss.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The migration's configuration file.", show_default=True)
]
PhaseOption = Annotated[int, typer.Option("--phase", "-p", min=1, max=4, help="Phase number, 1 to 4.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into one sentence on stderr and a non-zero exit, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MigratorError as err:
            raise fail(str(err), err.exit_code) from None
        except NoCredentialsError:
            raise fail("no AWS credentials were found; configure a profile or role and run again") from None
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "Unknown")
            op = err.operation_name
            if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
                raise fail("the AWS credentials have expired; refresh them and run again") from None
            msg = str(err.response.get("Error", {}).get("Message", ""))[:200]
            raise fail(f"AWS refused {op} ({code}: {msg}); fix the cause and run again") from None
        except ProfileNotFound as err:
            raise fail(
                f"the AWS profile {err.kwargs.get('profile')!r} is not configured; fix profile: or run "
                "`aws configure --profile NAME`"
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError) as err:
            raise fail(
                f"could not reach AWS ({type(err).__name__}); check the network, region and endpoint_url"
            ) from None
        except BotoCoreError as err:
            raise fail(
                f"the AWS SDK failed ({type(err).__name__}: {str(err)[:200]}); fix the cause and run again"
            ) from None
        except KeyboardInterrupt:
            raise fail("interrupted; every phase is safe to run again", 130) from None

    return wrapper


def _migration(config: Path) -> Any:
    from .migration import Migration

    return Migration(load_config(config), config)


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
@guarded
def plan(
    phase: PhaseOption,
    config: ConfigOption = Path("migration.yaml"),
    format: Annotated[PlanFormat, typer.Option("--format", help="text, markdown (for a PR comment) or json.")] = (
        PlanFormat.text
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the summary to a file.")] = None,
) -> None:
    """Show the Terraform plan of a phase without changing anything."""
    from .planview import render_plan

    report = _migration(config).plan(phase)
    text = render_plan(report, format.value)
    if output:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"plan summary written to {output}")
    else:
        sys.stdout.write(text)


@app.command()
@guarded
def apply(
    phase: PhaseOption,
    config: ConfigOption = Path("migration.yaml"),
    allow_table_replace: Annotated[
        bool, typer.Option("--allow-table-replace", help="Allow a plan that destroys or replaces a DynamoDB table.")
    ] = False,
    enable_stream: Annotated[
        bool, typer.Option("--enable-stream", help="Phase 1: enable a NEW_AND_OLD_IMAGES stream on the source.")
    ] = False,
    enable_pitr: Annotated[
        bool, typer.Option("--enable-pitr", help="Phase 1: enable point-in-time recovery on the source.")
    ] = False,
) -> None:
    """Run a phase: Terraform in the phase's account, then its data step."""
    _migration(config).apply(
        phase, allow_table_replace=allow_table_replace, enable_stream=enable_stream, enable_pitr=enable_pitr
    )


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
        raise MigratorError("only --local replication runs from the CLI; the Lambda replicates once phase 4 is done")
    from .replication import run_local

    summary = run_local(_migration(config), until_caught_up=until_caught_up)
    err_console.print(summary)


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
    from .checks import run_verify

    result = run_verify(_migration(config), repair=repair, segments=segments, workers=workers, as_json=as_json)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    if not result.clean:
        raise typer.Exit(1)


@app.command()
@guarded
def redrive(
    config: ConfigOption = Path("migration.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be fixed; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Fix in the target every key of the batches the replicator gave up on, from the current source."""
    from .redrive import redrive as run_redrive
    from .redrive import summary

    m = _migration(config)
    result = run_redrive(m, dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    else:
        for line in summary(result, m.config.failure_bucket_name):
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@guarded
def status(
    config: ConfigOption = Path("migration.yaml"),
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh live until interrupted.")] = False,
) -> None:
    """Where the migration stands: phases, export, import, replicator, deadline, last verify."""
    from .status import show_status

    show_status(_migration(config), as_json=as_json, watch=watch)


@app.command()
@guarded
def cutover(
    config: ConfigOption = Path("migration.yaml"),
    check: Annotated[bool, typer.Option("--check", help="Only check the gate (the only mode for now).")] = True,
    max_lag: Annotated[float, typer.Option("--max-lag", help="Largest replication lag, in seconds.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """The cutover gate: exit 0 only when caught up, no failures wait, and verify is clean."""
    from .cutover import check_gate

    gate = check_gate(_migration(config), max_lag_s=max_lag)
    if as_json:
        sys.stdout.write(json.dumps({"open": gate.open, "unmet": gate.unmet, **gate.facts}, default=str) + "\n")
    elif gate.open:
        err_console.print("[bold green]cutover gate open[/]: replicator caught up, no failures waiting, verify clean")
    else:
        for reason in gate.unmet:
            err_console.print(f"[red]✗[/] {reason}", highlight=False)
    if not gate.open:
        raise typer.Exit(1)


@app.command()
@guarded
def demo(
    items: Annotated[int, typer.Option("--items", min=100, help="Items in the demo's source table.")] = 2500,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the demo writes its config and state.")
    ] = None,
) -> None:
    """Run a whole migration on an embedded emulator with two accounts, under live writes."""
    from .demo import run_demo

    ok = run_demo(items=items, workdir=workdir)
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
