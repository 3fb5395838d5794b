"""`migrator cutover --check`: the gate before traffic moves to the target table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .checks import run_verify
from .status import read_replicator

if TYPE_CHECKING:
    from .migration import Migration


@dataclass
class Gate:
    unmet: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.unmet


def caught_up_problem(replicator: dict[str, Any], max_lag_s: float) -> str | None:
    """Why the replicator does not count as caught up, or None. Pure: tested table-style."""
    if "unavailable" in replicator:
        return f"the replicator could not be read ({replicator['unavailable']})"
    if replicator.get("mapping") in (None, "absent"):
        return "there is no event source mapping: run phase 4"
    if replicator.get("mapping") != "Enabled":
        return f"the event source mapping is {replicator.get('mapping')}, not Enabled: run phase 4"
    age_ms = replicator.get("iterator_age_ms")
    local_lag = replicator.get("local_lag_s")
    local_caught_up = replicator.get("local_caught_up")
    if age_ms is not None and age_ms / 1000 <= max_lag_s:
        return None
    if local_caught_up and local_lag is not None and float(local_lag) <= max_lag_s:
        return None
    if age_ms is not None:
        return f"the replicator's iterator age is {age_ms / 1000:.0f} s, above {max_lag_s:.0f} s"
    if local_lag is not None:
        return f"the local replicator's lag is {float(local_lag):.0f} s or it has not caught up"
    return "no iterator age has been reported yet: wait for the replicator to run"


def check_gate(m: Migration, *, max_lag_s: float = 60.0, verify: bool = True) -> Gate:
    gate = Gate()
    for number in (1, 2, 3, 4):
        if m.state.phase_status(number) != "done":
            gate.unmet.append(f"phase {number} is {m.state.phase_status(number)}, not done")
    replicator = read_replicator(m)
    local = m.state.section("replication")
    replicator.setdefault("local_caught_up", local.get("local_caught_up"))
    gate.facts["replicator"] = replicator
    problem = caught_up_problem(replicator, max_lag_s)
    if problem:
        gate.unmet.append(problem)
    failures = replicator.get("failures_waiting")
    if failures != 0:
        gate.unmet.append(f"failures are waiting in the failure destination ({failures}): run `migrator redrive`")
    if verify and not gate.unmet:
        result = run_verify(m, repair=False, segments=8, workers=8, as_json=True)
        gate.facts["verify"] = result.to_json()
        if not result.clean:
            data = result.to_json()
            gate.unmet.append(
                f"verify is not clean ({data['missing']} missing, {data['different']} different, "
                f"{data['extraneous']} extraneous): wait for catch-up or run `migrator verify --repair`"
            )
    elif verify:
        gate.unmet.append("verify was not run because the conditions above are unmet")
    return gate
