"""`migrator cutover` and `migrator rollback`: move replication (and with it the application's writes) from
one table to the other, with the way back kept ready.

Both are the same switch, mirrored. ``cutover`` runs after the application has stopped writing to the
source, ``rollback`` after it has stopped writing to the target. Under the migration lock:

1. the direction that runs now must be the one recorded, and the other's mapping must be off on AWS;
2. **drain**: the backlog (:mod:`.backlog`) of the running direction is polled until no change is
   pending and a poll read nothing new; ``timeout_s`` bounds the wait, and a table still being written
   is said with the number of records that arrived meanwhile;
3. failure records of the running direction are redriven (from the current item of the table it reads);
4. the running mapping is **disabled** (waited for until Lambda says ``Disabled``);
5. **verify** must be clean. It runs after the mapping is off, so nothing can change the table it
   checks between the verify and the switch; a last backlog poll must read nothing new (the
   application really stopped). Either failing re-enables the running mapping and refuses;
6. the switch is recorded (``cutover`` section: direction, history with time and who) — before the next
   step, so Terraform's variables, which follow the record, can never enable the direction just turned off;
7. the other mapping is **enabled** (after reading, on AWS, that the first one is off: invariant 9).

Why replaying the reverse stream from its start is safe although the target's stream also holds the
forward replicator's own writes: each stream record carries the whole new image (or a deletion) of a
key, records of one key are in order, and the replicator writes per key only the last change it has,
as it is (invariant 3). Replaying the target's stream into the source therefore ends, per key, at the
target's last change — its current item — whichever writer made the earlier changes. The echoes of the
forward replicator write back values the source already held, in their order, before the newer
changes that follow them. ``tests/test_switch.py::test_reverse_replay_from_the_start_converges_on_the_target``
replays a target stream that holds both kinds of record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.dynamodb import table_key_names
from ..clock import iso, now
from ..errors import MigratorError
from ..lock import me
from ..phases.direction import direction_of
from .backlog import Backlog, BacklogView
from .direction import (
    Direction,
    find_mapping,
    forward,
    mapping_state,
    refuse_if_active,
    reverse,
    set_enabled,
    stream_arn,
)
from .redrive import redrive_direction
from .verify.run import run_verify

if TYPE_CHECKING:
    from ..context import MigrationContext

Action = Literal["cutover", "rollback"]


@dataclass
class SwitchResult:
    action: Action
    direction: str  # the direction now enabled
    at: str
    by: str
    drained_records: int  # records the drain read from the stream (since its start)
    arrived: int  # of those, the ones that arrived while it waited
    redriven: int
    verify: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "direction": self.direction,
            "at": self.at,
            "by": self.by,
            "drained_records": self.drained_records,
            "arrived": self.arrived,
            "redriven": self.redriven,
            "verify": self.verify,
            "seconds": round(self.seconds, 1),
        }


def recorded_direction(ctx: MigrationContext) -> str:
    """The direction the last switch recorded (``forward`` before any cutover)."""
    return direction_of(ctx.state.section("cutover"))


def _check(ctx: MigrationContext, action: Action) -> None:
    """Refusals before anything is read from or changed in the accounts' data."""
    from ..phases import CLEANUP, FALLBACK

    direction = recorded_direction(ctx)
    if CLEANUP.done(ctx):
        raise MigratorError(
            f"phase {CLEANUP.number} ({CLEANUP.name}) removed the replicators, so there is nothing to {action}; "
            "the migration is finished"
        )
    if action == "cutover":
        if not FALLBACK.done(ctx):
            raise MigratorError(
                f"the way back is not deployed: run `make phase-{FALLBACK.number}` ({FALLBACK.name}) before the cutover"
            )
        if direction == "reverse":
            raise MigratorError(
                "the migration is already cut over (the target is the live table); `migrator rollback` moves it back"
            )
    elif direction != "reverse":
        raise MigratorError("there is no cutover to roll back: the source is the live table; nothing was changed")


def drain(
    ctx: MigrationContext,
    d: Direction,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Backlog, BacklogView, int]:
    """Poll ``d``'s backlog until nothing is pending and a poll read nothing new, or refuse at ``timeout_s``."""
    key_names = table_key_names(d.write_session(ctx).client("dynamodb"), d.writes_table)
    backlog = Backlog(
        d.session(ctx).client("dynamodbstreams"),
        stream_arn(ctx, d),
        d.write_session(ctx).client("dynamodb"),
        d.writes_table,
        key_names,
        retry=ctx.retry,
    )
    start = time.monotonic()
    with ctx.report.live() as board:
        task = board.add(f"draining the {d.label} replicator")
        view = backlog.poll()
        baseline = view.total
        while True:
            arrived = view.total - baseline
            task.update(
                f"draining the {d.label} replicator: {view.pending} change(s) pending (oldest {view.oldest_s:.1f} s), "
                f"{arrived} record(s) arrived meanwhile"
            )
            if view.pending == 0 and view.read == 0:
                return backlog, view, arrived
            elapsed = time.monotonic() - start
            if elapsed >= timeout_s:
                still = f"{d.reads} table {d.reads_table}"
                if arrived:
                    raise MigratorError(
                        f"the {d.name} replicator did not drain in {timeout_s:g} s: {arrived} record(s) arrived in the "
                        f"{still}'s stream meanwhile, so it is still being written; stop the application's writes to "
                        "it and run the command again (nothing was changed)"
                    )
                raise MigratorError(
                    f"the {d.name} replicator did not drain in {timeout_s:g} s: {view.pending} change(s) of the "
                    f"{still} are not in the {d.writes} table yet (oldest {view.oldest_s:.0f} s); check "
                    "`migrator status` and run the command again (nothing was changed)"
                )
            sleep(min(poll_s, max(0.0, timeout_s - elapsed)))
            view = backlog.poll()


def _switch(ctx: MigrationContext, action: Action, *, timeout_s: float, poll_s: float) -> SwitchResult:
    running, following = (forward(ctx), reverse(ctx)) if action == "cutover" else (reverse(ctx), forward(ctx))
    started = time.monotonic()
    report = ctx.report
    refuse_if_active(ctx, following)
    state = mapping_state(find_mapping(ctx, running))
    if state == "absent":
        raise MigratorError(
            f"the {running.name} replicator has no event source mapping; apply the phases first (`migrator status`)"
        )
    backlog, view, arrived = drain(ctx, running, timeout_s=timeout_s, poll_s=poll_s)
    report.done(f"the {running.label} replicator is drained: {view.total} stream record(s) checked, none pending")

    redriven = 0
    fixed = redrive_direction(ctx, running)
    if fixed.objects:
        if not fixed.ok:
            raise MigratorError(
                f"{fixed.objects} failure record(s) of the {running.name} replicator could not all be fixed; run "
                "`migrator redrive` and see what it says, then run the command again (nothing was switched)"
            )
        redriven = fixed.keys
        report.done(f"redrove {fixed.keys} key(s) from {fixed.objects} failure record(s)")

    set_enabled(ctx, running, False)
    report.done(f"the {running.label} event source mapping is disabled")
    try:
        result = run_verify(ctx).result
        if not result.clean:
            raise MigratorError(
                f"verify is not clean ({result.missing} missing, {result.different} different, {result.extraneous} "
                f"extraneous), so the {running.name} replicator was enabled again and nothing was switched; "
                "see `migrator verify` and run the command again"
            )
        last = backlog.poll()
        if last.read:
            raise MigratorError(
                f"{last.read} record(s) reached the {running.reads} table's stream during the {action}, so it is "
                f"still being written; the {running.name} replicator was enabled again and nothing was switched"
            )
    except BaseException:
        set_enabled(ctx, running, True)
        raise
    report.done(f"verify is clean: {result.source_items} item(s) on each side")

    # Recorded before the other mapping is enabled: Terraform's variables follow the record, so whatever
    # happens next, no apply can enable the direction that was just turned off (invariant 9).
    at, by = iso(now()), f"{me(action).user}@{me(action).host}"

    def record(doc: dict[str, Any]) -> None:
        section = doc.setdefault("cutover", {})
        section["direction"] = following.name
        section.setdefault("history", []).append({"action": action, "at": at, "by": by})

    ctx.state.change(record)
    try:
        set_enabled(ctx, following, True)
    except (MigratorError, ClientError, BotoCoreError) as err:
        from ..phases import FALLBACK, REPLICATE

        deploys = FALLBACK if following.name == "reverse" else REPLICATE
        raise MigratorError(
            f"the {action} is recorded and the {running.name} mapping is off, but enabling the {following.name} "
            f"mapping failed ({err}); run `make phase-{deploys.number}`, which enables it as recorded"
        ) from None
    report.done(f"the {following.label} event source mapping is enabled")

    return SwitchResult(
        action=action,
        direction=following.name,
        at=at,
        by=by,
        drained_records=view.total,
        arrived=arrived,
        redriven=redriven,
        verify=result.to_json(),
        seconds=time.monotonic() - started,
    )


def switch(ctx: MigrationContext, action: Action, *, timeout_s: float = 600.0, poll_s: float = 2.0) -> SwitchResult:
    """Cut over (forward → reverse) or roll back (reverse → forward), under the migration lock."""
    _check(ctx, action)
    with ctx.lock.held(f"migrator {action}"):
        _check(ctx, action)  # again, now that no other run can change the document
        return _switch(ctx, action, timeout_s=timeout_s, poll_s=poll_s)
