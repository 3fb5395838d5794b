"""`migrator cutover --check`: the gate before traffic moves to the target table (a read model: the CLI
renders the :class:`Gate` it returns).

Open (exit 0) only when every phase is done, the replicator is caught up (iterator age, or the local
runner's lag, under the threshold), no failure record waits in the failure destination, and a verify
run now is clean. Otherwise every unmet condition is listed, each with what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

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


def caught_up_problem(replicator: Mapping[str, Any], max_lag_s: float) -> str | None:
    """Why the replicator does not count as caught up, or None. Pure: tested table-style.

    The mapping must be Enabled; then CloudWatch's iterator age decides when it is reported, else the
    local runner's last run must have caught up with a lag under ``max_lag_s``.
    """
    mapping = replicator.get("mapping")
    if mapping is None:
        return f"the event source mapping could not be read ({replicator.get('unavailable') or 'no reason given'})"
    if mapping == "absent":
        return (
            f"there is no event source mapping for the replicator: apply phase {EXPORT.number} (creates it) and "
            f"phase {REPLICATE.number} (enables it)"
        )
    if mapping != "Enabled":
        return f"the event source mapping is {mapping}, not Enabled: run phase {REPLICATE.number}"
    age_ms = replicator.get("iterator_age_ms")
    if age_ms is not None:
        if age_ms / 1000 <= max_lag_s:
            return None
        return (
            f"the replicator is behind: iterator age {age_ms / 1000:.1f} s is above {max_lag_s:g} s; "
            "wait and check again"
        )
    lag = replicator.get("local_lag_s")
    if lag is None:
        return (
            "no iterator age is reported and the local runner has not run: wait for the replicator, "
            "or run `migrator replicate --local --until-caught-up`"
        )
    if not replicator.get("local_caught_up"):
        return (
            f"the local runner has not caught up (lag {float(lag):.1f} s): "
            "run `migrator replicate --local --until-caught-up`"
        )
    if float(lag) > max_lag_s:
        return f"the local runner is behind: lag {float(lag):.1f} s is above {max_lag_s:g} s; run it again"
    return None


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
    status = collect_status(m)
    replicator = status["replicator"]
    gate = Gate(facts={"phases": status["phases"], "replicator": replicator})
    gate.unmet.extend(phase_problems(status["phases"]))
    for problem in (
        caught_up_problem(replicator, max_lag_s),
        failures_problem(replicator, m.config.failure_bucket_name),
    ):
        if problem:
            gate.unmet.append(problem)
    problem, gate.facts["verify"] = verify_problem(m)
    if problem:
        gate.unmet.append(problem)
    return gate
