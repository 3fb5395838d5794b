"""`migrator cutover --check`: open only when caught up, no failures wait and verify is clean."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.dataplane.backlog import BacklogView
from migrator.phases import PHASES
from migrator.readmodels.cutover import caught_up_problem, check_gate, failures_problem

from .test_status import Env, make_env

MAX_LAG = 60.0


# The pure conditions, table-style -------------------------------------------------------------------
ENABLED = {"mapping": "Enabled"}


@pytest.mark.parametrize(
    ("replicator", "backlog", "why", "expected"),
    [
        pytest.param(ENABLED, BacklogView(0, 0.0, 0, 900), None, None, id="nothing pending"),
        pytest.param(ENABLED, BacklogView(0, 0.0, 0, 900), None, None, id="a quiet table long after the last catch-up"),
        pytest.param(ENABLED, BacklogView(3, 59.9, 3, 903), None, None, id="pending but younger than the threshold"),
        pytest.param(ENABLED, BacklogView(3, 60.0, 0, 903), None, None, id="at the threshold"),
        pytest.param(
            ENABLED,
            BacklogView(3, 61.1, 0, 903),
            None,
            "the replicator is behind: the oldest change not yet replicated is 61.1 s old, above 60 s (3 key(s)",
            id="behind",
        ),
        pytest.param(
            {"mapping": "Disabled"}, BacklogView(0, 0.0, 0, 10), None, None, id="disabled but caught up (local runner)"
        ),
        pytest.param(
            {"mapping": "absent"},
            BacklogView(0, 0.0, 0, 0),
            None,
            "there is no event source mapping for the replicator",
            id="mapping absent",
        ),
        pytest.param(
            ENABLED,
            None,
            "DescribeStream failed with AccessDenied",
            "the replication backlog could not be read (DescribeStream failed with AccessDenied)",
            id="backlog unreadable",
        ),
    ],
)
def test_caught_up_problem(
    replicator: dict[str, Any], backlog: BacklogView | None, why: str | None, expected: str | None
) -> None:
    problem = caught_up_problem(replicator, backlog, why, MAX_LAG)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(expected), problem


@pytest.mark.parametrize(
    ("replicator", "expected"),
    [
        pytest.param({"failures_waiting": 0}, None, id="none waiting"),
        pytest.param({"failures_waiting": 3}, "3 failure record(s) wait in s3://fb: run `migrator redrive`", id="3"),
        pytest.param(
            {"failures_waiting": None, "unavailable": "failure destination: no bucket"},
            "the failure destination s3://fb could not be read (failure destination: no bucket)",
            id="unreadable",
        ),
    ],
)
def test_failures_problem(replicator: dict[str, Any], expected: str | None) -> None:
    assert failures_problem(replicator, "fb") == expected


# The gate against the emulator ------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str) -> Env:
    return make_env(tmp_path, moto_endpoint, source, target, unique)


def ready(env: Env) -> None:
    """A migration ready for cutover: phases done, mapping Enabled, local runner caught up, equal tables."""
    stream = env.source_table(items=6)
    env.target_table(items=6)
    env.replicator(stream, enabled=True)
    env.failure_bucket()
    for p in PHASES:
        if not p.after_cutover:  # every phase up to the fallback (5); cleanup comes after the cutover
            env.m.state.mark_phase(p.number, "done")
    env.m.state.update("replication", local_lag_s=0.5, local_caught_up=True)


def cutover(env: Env, *args: str) -> Any:
    return CliRunner().invoke(app, ["cutover", "--check", "--config", str(env.config), *args], env={"COLUMNS": "300"})


def unmet_lines(run: Any) -> list[str]:
    return [line[2:] for line in run.stderr.splitlines() if line.startswith("✗ ")]


def test_gate_opens_when_caught_up_no_failures_wait_and_verify_is_clean(env: Env) -> None:
    ready(env)

    run = cutover(env)

    assert run.exit_code == 0, run.output
    assert "cutover gate open" in run.stderr
    assert env.m.state.section("verify")["missing"] == 0  # the gate's verify is the last verify


def test_gate_json_lists_nothing_unmet_when_open(env: Env) -> None:
    ready(env)

    run = cutover(env, "--json")

    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout.splitlines()[0])
    assert (data["open"], data["unmet"]) == (True, [])
    assert data["verify"]["source_items"] == data["verify"]["target_items"] == 6


def _failure_waiting(env: Env) -> None:
    env.source.client("s3").put_object(Bucket=env.m.config.failure_bucket_name, Key="aws/lambda/x/1", Body=b"{}")


def _target_missing_an_item(env: Env) -> None:
    env.target.client("dynamodb").delete_item(
        TableName=env.m.config.target_table_name, Key={"pk": {"S": "p0"}, "sk": {"S": "s0000"}}
    )


BREAKS: list[Any] = [
    pytest.param(_failure_waiting, "1 failure record(s) wait in s3://", id="failures waiting"),
    pytest.param(_target_missing_an_item, "verify is not clean (1 missing, 0 different, 0 extraneous)", id="verify"),
]


@pytest.mark.parametrize(("breaks", "expected"), BREAKS)
def test_gate_closes_and_lists_the_one_unmet_condition(env: Env, breaks: Callable[[Env], None], expected: str) -> None:
    ready(env)
    breaks(env)

    run = cutover(env)

    assert run.exit_code == 1, run.output
    unmet = unmet_lines(run)
    assert len(unmet) == 1, run.stderr
    assert unmet[0].startswith(expected), unmet[0]


def test_gate_closes_while_a_change_of_the_source_is_not_in_the_target(env: Env) -> None:
    ready(env)
    env.source.client("dynamodb").put_item(
        TableName=env.table, Item={"pk": {"S": "p0"}, "sk": {"S": "s0000"}, "n": {"N": "42"}}
    )

    run = cutover(env, "--max-lag", "0")

    assert run.exit_code == 1, run.output
    unmet = unmet_lines(run)
    assert unmet[0].startswith("the replicator is behind: the oldest change not yet replicated is"), unmet
    assert unmet[0].endswith("(1 key(s) pending); wait and check again"), unmet
    assert unmet[1].startswith("verify is not clean (0 missing, 1 different"), unmet


def test_gate_closes_when_the_mapping_is_absent(env: Env) -> None:
    env.source_table(items=2)  # everything of `ready` but the replicator's mapping
    env.target_table(items=2)
    env.failure_bucket()
    for p in PHASES:
        if not p.after_cutover:  # every phase up to the fallback (5); cleanup comes after the cutover
            env.m.state.mark_phase(p.number, "done")
    env.m.state.update("replication", local_lag_s=0.5, local_caught_up=True)

    run = cutover(env)

    assert run.exit_code == 1, run.output
    assert unmet_lines(run) == [
        "there is no event source mapping for the replicator: apply phase 2 (creates it) and phase 4 (enables it)"
    ]


def test_gate_closed_lists_every_unmet_condition_at_once(env: Env) -> None:
    env.source_table(items=3)
    env.target_table(items=2)  # one item short
    env.failure_bucket()
    _failure_waiting(env)
    env.m.state.mark_phase(1, "done")
    env.m.state.mark_phase(2, "done")
    env.m.state.mark_phase(3, "done")
    env.m.state.mark_phase(4, "failed")
    env.m.state.update("replication", local_lag_s=600.0, local_caught_up=False)

    run = cutover(env)

    assert run.exit_code == 1
    unmet = unmet_lines(run)
    assert [line.split(":")[0].split(" (")[0] for line in unmet] == [
        "phase 4",
        "phase 5",  # the way back must be ready before the cutover; cleanup (6) comes after it
        "there is no event source mapping for the replicator",
        "1 failure record(s) wait in s3",
        "verify is not clean",
    ]


def test_gate_says_the_failure_destination_could_not_be_read_when_the_bucket_is_missing(env: Env) -> None:
    ready(env)
    env.source.client("s3").delete_bucket(Bucket=env.m.config.failure_bucket_name)

    gate = check_gate(env.m, max_lag_s=MAX_LAG)

    assert len(gate.unmet) == 1
    assert gate.unmet[0].startswith(
        f"the failure destination s3://{env.m.config.failure_bucket_name} could not be read"
    )
