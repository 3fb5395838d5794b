"""The ``migrator`` command line: the typer app, the options every command shares, and the one place
that turns every expected failure into one sentence on stderr and a non-zero exit, without a traceback.

Commands are thin (one module per command or view in this package): they build a
:class:`~migrator.context.MigrationContext`, call a plain function, and render what it returns.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, ParamSpec, TypeVar

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
from rich.text import Text

from ..aws.errors import error_code, is_expired
from ..context import MigrationContext
from ..errors import Interrupted, MigratorError
from ..phases import PHASES
from .progress import RichReporter

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

PHASE_HELP = "Phase number: " + ", ".join(f"{p.number} {p.name}" for p in PHASES) + "."

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The migration's configuration file.", show_default=True)
]
PhaseOption = Annotated[
    int, typer.Option("--phase", "-p", min=PHASES[0].number, max=PHASES[-1].number, help=PHASE_HELP)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
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
            if is_expired(err):
                raise fail("the AWS credentials have expired; refresh them and run again") from None
            msg = str(err.response.get("Error", {}).get("Message", ""))[:200]
            code = error_code(err) or "Unknown"
            raise fail(f"AWS refused {err.operation_name} ({code}: {msg}); fix the cause and run again") from None
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
            raise fail("interrupted; Terraform was stopped and every phase is safe to run again", 130) from None
        except Interrupted as stop:
            raise fail(
                f"stopped by {stop.signal_name}; Terraform was stopped and every phase is safe to run again",
                stop.exit_code,
            ) from None

    return wrapper


def raise_on_sigterm() -> None:
    """Turn SIGTERM into :class:`~migrator.errors.Interrupted`, so a stopped run cleans up as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("SIGTERM", 128 + signum)

    signal.signal(signal.SIGTERM, handler)


def context(config: Path) -> MigrationContext:
    """The migration of ``config``, reporting on stderr; refused when the configuration names another
    source or target than the migration's document records (every command works on what it says)."""
    ctx = MigrationContext.load(config, RichReporter(err_console))
    ctx.check_fingerprint()
    return ctx
