"""Both directions of replication against the emulator (no Terraform): the backlog that says what is not
replicated yet, and the convergence of the reverse replay although the target's stream holds the
forward replicator's own writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from migrator.aws.session import AccountSession
from migrator.dataplane.backlog import Backlog, order_shards
from migrator.dataplane.direction import current_direction
from migrator.dataplane.stream import replicate_local

from .conftest import make_table, scan_all

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
