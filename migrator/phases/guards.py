"""The checks every ``apply`` makes before it changes anything (docs/architecture.md, "The flow of apply").

* the migration name still names the same source → target move;
* the earlier phases are done (phase order is the order of ``PHASES``);
* the credentials of each account the phase works in belong to that account (invariant 7);
* the stream-retention deadline has not passed, for phases that need the stream's records (invariant 2).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..aws.errors import error_code, is_expired
from ..clock import iso, now, parse_iso
from ..errors import MigratorError
from .base import Account, Phase

if TYPE_CHECKING:
    from ..context import MigrationContext


def check_identity(ctx: MigrationContext, account: Account) -> None:
    """Invariant 7 (docs/architecture.md): the credentials belong to the configured account, checked first."""
    expected = ctx.account_id(account)
    try:
        actual = ctx.session(account).caller_account()
    except ClientError as err:
        if is_expired(err):
            raise MigratorError(
                f"the credentials for the {account} account have expired; refresh them and run again"
            ) from None
        raise MigratorError(
            f"could not confirm the identity in the {account} account ({error_code(err)}); check its credentials "
            f"and {account}.role_arn"
        ) from None
    if actual != expected:
        raise MigratorError(
            f"the {account} credentials belong to account {actual}, not the configured {account} account "
            f"{expected}; use credentials for {expected} (nothing was changed)"
        )


def check_same_migration(ctx: MigrationContext) -> None:
    """A migration name names one source → target move; a second one under the same name is refused."""
    ctx.check_fingerprint()


def check_order(ctx: MigrationContext, p: Phase) -> None:
    from . import earlier  # the phase list imports the phase modules, which import this one

    for before in earlier(p):
        status = ctx.state.phase_status(before.number)
        if status != "done":
            raise MigratorError(
                f"phase {p.number} ({p.name}) needs phase {before.number} ({before.name}) done first, "
                f"and it is {status}; run `make phase-{before.number}`"
            )


def retention_deadline(ctx: MigrationContext) -> dt.datetime | None:
    """Export start + the stream's retention: past it, records the target still needs are trimmed."""
    started = ctx.state.section("export").get("start_time")
    if not started:
        return None
    return parse_iso(started) + dt.timedelta(hours=ctx.config.stream_retention_hours)


def check_deadline(ctx: MigrationContext) -> None:
    """Invariant 2 (docs/architecture.md): past export start + retention, the stream has trimmed records the
    target still needs."""
    deadline = retention_deadline(ctx)
    if deadline is None:
        return
    left = deadline - now()
    if left <= dt.timedelta(0):
        raise MigratorError(
            f"the stream-retention deadline {iso(deadline)} has passed, so changes made early in the export "
            "are already trimmed from the stream; start the migration again from phase 2 with a new export"
        )
    hours, rest = divmod(int(left.total_seconds()), 3600)
    ctx.report.info(f"stream-retention deadline {iso(deadline)} ({hours} h {rest // 60} min left)")
