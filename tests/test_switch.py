"""Both directions of replication against the emulator (no Terraform): the backlog that says what is not
replicated yet, and the convergence of the reverse replay although the target's stream holds the
forward replicator's own writes."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.clock import iso, now
from migrator.dataplane.backlog import Backlog, order_shards
from migrator.dataplane.direction import current_direction
from migrator.dataplane.stream import replicate_local
from migrator.phases import CLEANUP, FALLBACK, earlier

from .conftest import make_table, scan_all
from .test_status import TRUST, Env, make_env, put_items, small_zip

KEYS = ["pk", "sk"]


def item(pk: str, sk: str, **values: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in values.items()}}


def stream_of(session: AccountSession, table: str) -> str:
    return str(session.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"])


def replay(
    frm: AccountSession, table_from: str, to: AccountSession, table_to: str, checkpoints: Path, **kw: Any
) -> int:
    summary = replicate_local(
        frm.client("dynamodbstreams"),
        to.client("dynamodb"),
        stream_of(frm, table_from),
        table_to,
        checkpoints,
        until_caught_up=True,
        poll_interval=0.05,
        **kw,
    )
    return int(summary.records_applied)


def stream_records(session: AccountSession, table: str) -> list[dict[str, Any]]:
    streams = session.client("dynamodbstreams")
    arn = stream_of(session, table)
    out: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while it:
            page = streams.get_records(ShardIterator=it)
            out += page["Records"]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def test_reverse_replay_from_the_start_converges_on_the_target(
    source: AccountSession, target: AccountSession, unique: str, tmp_path: Path
) -> None:
    src, tgt = f"Src{unique}", f"Tgt{unique}"
    make_table(source, src)
    make_table(target, tgt)
    s, t = source.client("dynamodb"), target.client("dynamodb")
    # Before the cutover: the application writes the source; the forward replicator copies it (its writes
    # land in the target's stream: the echoes).
    for i in range(30):
        s.put_item(TableName=src, Item=item("p", f"{i:03}", v=i))
    for i in range(0, 30, 3):
        s.put_item(TableName=src, Item=item("p", f"{i:03}", v=100 + i))
    for i in range(1, 30, 7):
        s.delete_item(TableName=src, Key={"pk": {"S": "p"}, "sk": {"S": f"{i:03}"}})
    replay(source, src, target, tgt, tmp_path / "forward.json")
    echoes = len(stream_records(target, tgt))
    assert echoes > 0
    # After the cutover: the application writes the target — new keys, changes and deletions of echoed keys.
    for i in range(0, 30, 2):
        t.put_item(TableName=tgt, Item=item("p", f"{i:03}", v=1000 + i))
    for i in range(30, 40):
        t.put_item(TableName=tgt, Item=item("q", f"{i:03}", v=i))
    for i in range(0, 30, 5):
        t.delete_item(TableName=tgt, Key={"pk": {"S": "p"}, "sk": {"S": f"{i:03}"}})
    records = stream_records(target, tgt)
    assert len(records) > echoes  # the target's stream holds both the echoes and the application's writes

    # The reverse replay from TRIM_HORIZON, in small pages (batches end in the middle of a key's changes).
    replay(target, tgt, source, src, tmp_path / "reverse.json", page_limit=7)
    assert scan_all(s, src) == scan_all(t, tgt)

    # Replaying it again from its start (no checkpoints) converges just the same.
    replay(target, tgt, source, src, tmp_path / "again.json", page_limit=3)
    assert scan_all(s, src) == scan_all(t, tgt)


def test_the_backlog_counts_changes_the_other_table_does_not_show_and_their_age(
    source: AccountSession, target: AccountSession, unique: str, tmp_path: Path
) -> None:
    src, tgt = f"Src{unique}", f"Tgt{unique}"
    make_table(source, src)
    make_table(target, tgt, stream=None)
    s = source.client("dynamodb")
    for i in range(5):
        s.put_item(TableName=src, Item=item("p", f"{i}", v=i))
    s.delete_item(TableName=src, Key={"pk": {"S": "p"}, "sk": {"S": "4"}})
    later = [dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)]
    backlog = Backlog(
        source.client("dynamodbstreams"),
        stream_of(source, src),
        target.client("dynamodb"),
        tgt,
        KEYS,
        clock=lambda: later[0],
    )

    first = backlog.poll()
    assert (first.pending, first.read) == (4, 6)  # the deleted key is absent from the target: replicated
    assert 80 < first.oldest_s < 200

    replay(source, src, target, tgt, tmp_path / "cp.json")
    second = backlog.poll()
    assert (second.pending, second.read, second.oldest_s) == (0, 0, 0.0)

    s.put_item(TableName=src, Item=item("p", "0", v=42))  # a change after the drain
    third = backlog.poll()
    assert (third.pending, third.read, third.total) == (1, 1, 7)


def test_a_target_holding_an_older_image_is_not_caught_up(
    source: AccountSession, target: AccountSession, unique: str
) -> None:
    src, tgt = f"Src{unique}", f"Tgt{unique}"
    make_table(source, src)
    make_table(target, tgt, stream=None)
    source.client("dynamodb").put_item(TableName=src, Item=item("p", "1", v=2))
    target.client("dynamodb").put_item(TableName=tgt, Item=item("p", "1", v=1))
    backlog = Backlog(source.client("dynamodbstreams"), stream_of(source, src), target.client("dynamodb"), tgt, KEYS)
    assert backlog.poll().pending == 1


def test_parents_come_before_their_children() -> None:
    shards = [
        {"ShardId": "c", "ParentShardId": "b"},
        {"ShardId": "a"},
        {"ShardId": "b", "ParentShardId": "a"},
        {"ShardId": "x", "ParentShardId": "trimmed-away"},
    ]
    assert [s["ShardId"] for s in order_shards(shards)] == ["a", "b", "c", "x"]


@pytest.mark.parametrize(
    ("forward", "reverse", "expected"),
    [
        ("Enabled", "Disabled", "forward"),
        ("Disabled", "Enabled", "reverse"),
        ("Disabled", "absent", "none"),
        ("Enabling", "Disabled", "forward"),
        ("Disabled", "Disabling", "reverse"),
        ("Enabled", "Enabled", "both"),
        (None, None, "none"),
    ],
)
def test_direction_is_read_from_both_mappings(forward: str | None, reverse: str | None, expected: str) -> None:
    assert current_direction(forward, reverse) == expected


# The switch through the CLI, on mappings made by hand (no Terraform) ---------------------------------
@dataclass
class Both:
    """A migration whose two tables are equal, its forward mapping Enabled and its reverse one Disabled.

    The functions are stand-ins (they write nothing): these tests exercise the switch, and keep the tables
    in step themselves."""

    env: Env
    forward_uuid: str
    reverse_uuid: str

    def mapping(self, account: AccountSession, uuid: str) -> str:
        return str(account.client("lambda").get_event_source_mapping(UUID=uuid)["State"])

    @property
    def states(self) -> tuple[str, str]:
        return self.mapping(self.env.source, self.forward_uuid), self.mapping(self.env.target, self.reverse_uuid)

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--config", str(self.env.config)], env={"COLUMNS": "300"})


def _reverse_mapping(env: Env) -> str:
    c = env.m.config
    target_stream = make_table(env.target, c.target_table_name)["LatestStreamArn"]
    put_items(env.target.client("dynamodb"), c.target_table_name, 6)
    role = env.target.client("iam").create_role(
        RoleName=c.reverse_replicator_name, AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    lam = env.target.client("lambda")
    lam.create_function(
        FunctionName=c.reverse_replicator_name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handler.handle",
        Code={"ZipFile": small_zip()},
    )
    env.target.client("s3").create_bucket(Bucket=c.reverse_failure_bucket_name)
    mapping = lam.create_event_source_mapping(
        EventSourceArn=target_stream,
        FunctionName=c.reverse_replicator_name,
        Enabled=False,
        StartingPosition="LATEST",
        BatchSize=100,
    )
    return str(mapping["UUID"])


@pytest.fixture
def both(tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str) -> Both:
    env = make_env(tmp_path, moto_endpoint, source, target, unique)
    stream = env.source_table(items=6)
    forward_uuid = env.replicator(stream, enabled=True)
    env.failure_bucket()
    reverse_uuid = _reverse_mapping(env)
    for p in earlier(CLEANUP):
        env.m.state.mark_phase(p.number, "done")
    env.m.state.update("source_outputs", event_source_mapping_uuid=forward_uuid)
    env.m.state.update("target_outputs", reverse_event_source_mapping_uuid=reverse_uuid)
    return Both(env, forward_uuid, reverse_uuid)


def test_cutover_drains_verifies_and_moves_replication_to_the_reverse_direction(both: Both) -> None:
    run = both.run("cutover", "--timeout", "30", "--json")

    assert run.exit_code == 0, run.output
    assert "the application may now write to the target table" in run.stderr
    assert both.states == ("Disabled", "Enabled")
    recorded = both.env.m.state.section("cutover")
    assert recorded["direction"] == "reverse"
    assert [h["action"] for h in recorded["history"]] == ["cutover"]
    result = json.loads(run.stdout.splitlines()[0])
    assert (result["direction"], result["verify"]["missing"], result["verify"]["different"]) == ("reverse", 0, 0)
    status = both.env.status_json()["direction"]
    assert (status["current"], status["recorded"]) == ("reverse", "reverse")


def test_rollback_moves_it_back_and_a_second_cutover_works_the_same_way(both: Both) -> None:
    assert both.run("cutover", "--timeout", "30").exit_code == 0
    run = both.run("rollback", "--timeout", "30")
    assert run.exit_code == 0, run.output
    assert "the application may now write to the source table" in run.stderr
    assert both.states == ("Enabled", "Disabled")
    assert both.run("cutover", "--timeout", "30").exit_code == 0
    assert both.states == ("Disabled", "Enabled")
    assert [h["action"] for h in both.env.m.state.section("cutover")["history"]] == ["cutover", "rollback", "cutover"]


def test_cutover_while_the_source_is_still_written_times_out_and_changes_nothing(both: Both) -> None:
    ddb, table = both.env.source.client("dynamodb"), both.env.table
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            ddb.put_item(TableName=table, Item=item("live", f"{n:05}", v=n))
            n += 1
            time.sleep(0.02)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        run = both.run("cutover", "--timeout", "3")
    finally:
        stop.set()
        writer.join()

    assert run.exit_code == 1
    message = " ".join(run.stderr.split())
    assert "did not drain in 3 s:" in message and "record(s) arrived" in message and "still being written" in message
    assert "Traceback" not in run.output
    assert both.states == ("Enabled", "Disabled")
    assert both.env.m.state.section("cutover") == {}


def test_cutover_refuses_while_the_reverse_mapping_is_enabled(both: Both) -> None:
    both.env.target.client("lambda").update_event_source_mapping(UUID=both.reverse_uuid, Enabled=True)

    run = both.run("cutover", "--timeout", "30")

    assert run.exit_code == 1
    assert "the reverse event source mapping is Enabled" in " ".join(run.stderr.split())
    assert both.states == ("Enabled", "Enabled")
    assert both.env.m.state.section("cutover") == {}


def test_cutover_before_the_way_back_is_deployed_is_refused(both: Both) -> None:
    both.env.m.state.mark_phase(FALLBACK.number, "in progress")

    run = both.run("cutover")

    assert run.exit_code == 1
    assert f"run `make phase-{FALLBACK.number}`" in " ".join(run.stderr.split())
    assert both.states == ("Enabled", "Disabled")


def test_rollback_before_a_cutover_is_refused(both: Both) -> None:
    run = both.run("rollback")

    assert run.exit_code == 1
    assert "there is no cutover to roll back" in " ".join(run.stderr.split())
    assert both.states == ("Enabled", "Disabled")


def test_the_gate_opens_on_a_quiet_table_long_after_the_last_catch_up(both: Both) -> None:
    # Today's complaint: `lag 61.1 s is above 60 s` right after a clean catch-up on a quiet table.
    both.env.m.state.update(
        "replication", local_lag_s=0.1, local_caught_up=True, local_last_run=iso(now() - dt.timedelta(minutes=10))
    )

    run = both.run("cutover", "--check", "--json")

    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout.splitlines()[0])
    assert data["backlog"]["pending"] == 0 and data["backlog"]["oldest_s"] == 0.0


def test_after_a_cutover_redrive_fixes_the_source_from_the_current_target_item(both: Both) -> None:
    assert both.run("cutover", "--timeout", "30").exit_code == 0
    c = both.env.m.config
    k = {"pk": {"S": "p1"}, "sk": {"S": "s0001"}}
    current = {**k, "n": {"N": "777"}}
    both.env.target.client("dynamodb").put_item(TableName=c.target_table_name, Item=current)  # after the failure
    old = {**k, "n": {"N": "1"}}
    failed = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "DDBStreamBatchInfo": {
            "shardId": "shardId-1",
            "batchSize": 1,
            "streamArn": stream_of(both.env.target, c.target_table_name),
        },
        "payload": {
            "Records": [{"eventName": "MODIFY", "dynamodb": {"Keys": k, "NewImage": old, "SequenceNumber": "1"}}]
        },
    }
    both.env.target.client("s3").put_object(
        Bucket=c.reverse_failure_bucket_name, Key="aws/lambda/r/shardId-1/x", Body=json.dumps(failed).encode()
    )

    run = both.run("redrive", "--json")

    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout.splitlines()[0])
    assert (result["direction"], result["bucket"], result["written"]) == ("reverse", c.reverse_failure_bucket_name, 1)
    got = both.env.source.client("dynamodb").get_item(TableName=c.source_table_name, Key=k, ConsistentRead=True)
    assert got["Item"] == current  # the target's current item, not the failed record's image
