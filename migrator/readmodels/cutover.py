"""`migrator cutover --check`: the gate before traffic moves to the target table (a read model: the CLI
renders the :class:`Gate` it returns).

Open (exit 0) only when every phase before the cutover is done (the list up to cleanup), the replicator
is caught up (the oldest change not yet replicated is younger than the threshold), no failure record
waits in the failure destination, and a verify run now is clean. Otherwise every unmet condition is
listed, each with what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.dynamodb import table_key_names
from ..dataplane.backlog import Backlog, BacklogView
from ..dataplane.direction import forward, stream_arn
from ..dataplane.switch import recorded_direction
from ..dataplane.verify.run import run_verify
from ..errors import MigratorError
from ..phases import EXPORT, REPLICATE, phase
from .status import collect_status, reason
from .views import PhaseView

if TYPE_CHECKING:
    from ..context import MigrationContext

PHASE_OK = ("done", "applied")  # "applied": inferred from AWS on a machine without the local record


@dataclass
class Gate:
    unmet: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.unmet


def phase_problems(phases: list[PhaseView]) -> list[str]:
    """Every phase before the cutover must be done (cleanup, which comes after it, is not waited for)."""
    return [
        f"phase {p['phase']} ({p['name']}) is {p['status']}, not done: run `make phase-{p['phase']}`"
        for p in phases
        if p["status"] not in PHASE_OK and not phase(p["phase"]).after_cutover
    ]


def caught_up_problem(
    replicator: Mapping[str, Any], backlog: BacklogView | None, why: str | None, max_lag_s: float
) -> str | None:
    """Why the forward replicator does not count as caught up, or None. Pure: tested table-style.

    Caught up means the age of the oldest change of the source stream that the target does not show yet
    (:mod:`migrator.dataplane.backlog`) is under ``max_lag_s`` — not the time since the replicator last ran,
    which would hold a quiet table back."""
    mapping = replicator.get("mapping")
    if mapping == "absent":
        return (
            f"there is no event source mapping for the replicator: apply phase {EXPORT.number} (creates it) and "
            f"phase {REPLICATE.number} (enables it)"
        )
    if backlog is None:
        return f"the replication backlog could not be read ({why or 'no reason given'})"
    if backlog.pending and backlog.oldest_s > max_lag_s:
        return (
            f"the replicator is behind: the oldest change not yet replicated is {backlog.oldest_s:.1f} s old, above "
            f"{max_lag_s:g} s ({backlog.pending} key(s) pending); wait and check again"
        )
    return None


def read_backlog(m: MigrationContext) -> tuple[BacklogView | None, str | None]:
    """One poll of the forward backlog (the whole source stream against the target), or why it failed."""
    d = forward(m)
    try:
        key_names = table_key_names(m.target.client("dynamodb"), d.writes_table)
        backlog = Backlog(
            m.source.client("dynamodbstreams"),
            stream_arn(m, d),
            m.target.client("dynamodb"),
            d.writes_table,
            key_names,
            retry=m.retry,
        )
        return backlog.poll(), None
    except (ClientError, BotoCoreError) as err:
        return None, reason(err)
    except MigratorError as err:
        return None, str(err)


def failures_problem(replicator: Mapping[str, Any], bucket: str) -> str | None:
    """Why failures may be waiting in the failure destination, or None. Pure: tested table-style."""
    waiting = replicator.get("failures_waiting")
    if waiting is None:
        why = replicator.get("unavailable") or "no reason given"
        return f"the failure destination s3://{bucket} could not be read ({why})"
    if waiting:
        return f"{waiting} failure record(s) wait in s3://{bucket}: run `migrator redrive`"
    return None


def verify_problem(m: MigrationContext) -> tuple[str | None, dict[str, Any] | None]:
    """Verify now (recorded as the last verify): why it is not clean, or None; and its result."""
    try:
        result = run_verify(m).result
    except (ClientError, BotoCoreError, MigratorError) as err:
        return f"verify could not run ({reason(err) if not isinstance(err, MigratorError) else err})", None
    data: dict[str, Any] = result.to_json()
    if result.clean:
        return None, data
    return (
        f"verify is not clean ({data['missing']} missing, {data['different']} different, {data['extraneous']} "
        "extraneous): wait for catch-up, `migrator redrive`, or `migrator verify --repair`",
        data,
    )


def check_gate(m: MigrationContext, *, max_lag_s: float = 60.0) -> Gate:
    """The gate before a cutover: the phases before it done, caught up, no failure waiting, verify clean."""
    status = collect_status(m)
    replicator = status["replicator"]
    phases = status["phases"]
    gate = Gate(facts={"phases": phases, "replicator": replicator})
    if recorded_direction(m) == "reverse":
        gate.unmet.append(
            "the migration is already cut over (the target is the live table); `migrator rollback` moves it back"
        )
    gate.unmet.extend(phase_problems(phases))
    backlog, why = read_backlog(m)
    gate.facts["backlog"] = (
        None
        if backlog is None
        else {"pending": backlog.pending, "oldest_s": round(backlog.oldest_s, 1), "records": backlog.total}
    )
    for problem in (
        caught_up_problem(replicator, backlog, why, max_lag_s),
        failures_problem(replicator, m.config.failure_bucket_name),
    ):
        if problem:
            gate.unmet.append(problem)
    problem, gate.facts["verify"] = verify_problem(m)
    if problem:
        gate.unmet.append(problem)
    return gate
