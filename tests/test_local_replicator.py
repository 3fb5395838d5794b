"""The local stream driver: shard order, checkpoints, restarts, trimmed and expired streams.

``FakeStreams`` is an in-memory DynamoDB Streams with what the emulator lacks: several shards with
parents, closed shards, ``DescribeStream`` pages, expired iterators and trimmed data. Other
replicator tests import it from here.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from migrator.aws.session import AccountSession
from migrator.dataplane.stream import (
    LocalReplicationError,
    Progress,
    ReplicationStalledError,
    ShardCheckpoint,
    StreamTrimmedError,
    load_checkpoints,
    replicate_local,
    save_checkpoints,
)
from migrator.replicator.batch import RetryPolicy

from .conftest import key_id, make_table, scan_all, stream_record
from .test_replicator_core import FakeDynamo, client_error, keys

ARN = "arn:aws:dynamodb:us-east-1:222222222222:table/T/stream/2026-01-01T00:00:00.000"
FAST = RetryPolicy(base_delay=0.0, max_delay=0.0, sleep=lambda s: None)


@dataclass
class FakeShard:
    shard_id: str
    parent: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ShardId": self.shard_id, "SequenceNumberRange": {}}
        if self.records:
            d["SequenceNumberRange"]["StartingSequenceNumber"] = self.records[0]["dynamodb"]["SequenceNumber"]
        if self.closed:
            d["SequenceNumberRange"]["EndingSequenceNumber"] = (
                self.records[-1]["dynamodb"]["SequenceNumber"] if self.records else "0"
            )
        if self.parent:
            d["ParentShardId"] = self.parent
        return d


class FakeStreams:
    """In-memory DynamoDB Streams for one stream.

    ``page_size`` caps ``DescribeStream`` pages; ``limit_for(shard_id)`` may cap a GetRecords page
    below the caller's Limit; ``before_get_records(shard_id, position)`` may raise (expired, trimmed)
    or change the stream (close a shard, add children).
    """

    def __init__(self, shards: list[FakeShard], *, page_size: int = 100, view: str = "NEW_AND_OLD_IMAGES") -> None:
        self.shards = shards
        self.page_size = page_size
        self.view = view
        self.trimmed_before: dict[str, int] = {}  # shard → records below this position are gone
        self.limit_for: Callable[[str], int] | None = None
        self.before_get_records: Callable[[str, int], None] | None = None
        self.iterator_requests: list[tuple[str, str, str | None]] = []
        self.describe_calls = 0
        self.on_describe: Callable[[int], None] | None = None
        self.lock = threading.Lock()

    def shard(self, shard_id: str) -> FakeShard:
        return next(s for s in self.shards if s.shard_id == shard_id)

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        assert StreamArn == ARN
        self.describe_calls += 1
        if self.on_describe and not ExclusiveStartShardId:
            self.on_describe(self.describe_calls)
        ids = [s.shard_id for s in self.shards]
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = self.shards[start : start + self.page_size]
        desc: dict[str, Any] = {
            "StreamArn": ARN,
            "StreamViewType": self.view,
            "StreamStatus": "ENABLED",
            "Shards": [s.describe() for s in page],
        }
        if start + self.page_size < len(self.shards):
            desc["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": desc}

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, Any]:
        self.iterator_requests.append((ShardId, ShardIteratorType, SequenceNumber))
        shard = self.shard(ShardId)
        if ShardIteratorType == "TRIM_HORIZON":
            position = self.trimmed_before.get(ShardId, 0)
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            assert SequenceNumber is not None
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in shard.records]
            position = sum(1 for s in seqs if s <= int(SequenceNumber))
            if position < self.trimmed_before.get(ShardId, 0):
                raise client_error("TrimmedDataAccessException", op="GetShardIterator")
        else:
            raise AssertionError(ShardIteratorType)
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        shard_id, pos = ShardIterator.rsplit("|", 1)
        position = int(pos)
        if self.before_get_records:
            self.before_get_records(shard_id, position)
        if position < self.trimmed_before.get(shard_id, 0):
            raise client_error("TrimmedDataAccessException", op="GetRecords")
        shard = self.shard(shard_id)
        limit = min(Limit, self.limit_for(shard_id)) if self.limit_for else Limit
        records = shard.records[position : position + limit]
        end = position + len(records)
        out: dict[str, Any] = {"Records": copy.deepcopy(records)}
        if not (shard.closed and end >= len(shard.records)):
            out["NextShardIterator"] = f"{shard_id}|{end}"
        return out


def rec(event: str, pk: str, seq: int, value: int | None = None) -> dict[str, Any]:
    image = None if event == "REMOVE" else {**keys(pk), "v": {"N": str(value if value is not None else seq)}}
    return stream_record(event, keys(pk), seq, new=image, old=keys(pk) if event != "INSERT" else None)


def _items(fake: FakeDynamo) -> dict[str, Any]:
    return dict(fake.items)


def _model(*pairs: tuple[str, int | None]) -> dict[str, Any]:
    return {key_id(keys(pk)): {**keys(pk), "v": {"N": str(v)}} for pk, v in pairs if v is not None}


# --------------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------------


def test_parent_shard_is_read_before_its_children(tmp_path: Path) -> None:
    parent = FakeShard("shardId-parent", records=[rec("INSERT", "a", 1), rec("MODIFY", "a", 2)], closed=True)
    child = FakeShard("shardId-child", parent="shardId-parent", records=[rec("REMOVE", "a", 3), rec("INSERT", "b", 4)])
    streams = FakeStreams([child, parent])  # the child is listed first
    target = FakeDynamo()
    summary = replicate_local(streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST)
    assert summary.caught_up
    assert summary.records_applied == 4
    assert _items(target) == _model(("b", 4))  # reading the child first would resurrect a
    order = [shard for shard, _, _ in streams.iterator_requests]
    assert order.index("shardId-parent") < order.index("shardId-child")


def test_describe_stream_pages_are_all_listed(tmp_path: Path) -> None:
    shards = [FakeShard(f"shardId-{i}", records=[rec("INSERT", f"k{i}", i + 1)]) for i in range(5)]
    streams = FakeStreams(shards, page_size=2)
    target = FakeDynamo()
    replicate_local(streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST)
    assert _items(target) == _model(*((f"k{i}", i + 1) for i in range(5)))


def test_relisting_picks_up_children_that_appear_while_running(tmp_path: Path) -> None:
    parent = FakeShard("shardId-p", records=[rec("INSERT", "a", 1)])
    streams = FakeStreams([parent])

    def rotate(shard_id: str, position: int) -> None:
        if shard_id == "shardId-p" and position >= 1 and not parent.closed:
            parent.records.append(rec("MODIFY", "a", 2))
            parent.closed = True
            streams.shards += [
                FakeShard("shardId-c1", parent="shardId-p", records=[rec("MODIFY", "a", 3)]),
                FakeShard("shardId-c2", parent="shardId-p", records=[rec("INSERT", "z", 4)]),
            ]

    streams.before_get_records = rotate
    target = FakeDynamo()
    summary = replicate_local(streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST)
    assert _items(target) == _model(("a", 3), ("z", 4))
    assert summary.records_applied == 4
    checkpoints = load_checkpoints(tmp_path / "cp.json")
    assert checkpoints["shardId-p"] == ShardCheckpoint(f"{2:021d}", closed=True)
    assert checkpoints["shardId-c1"] == ShardCheckpoint(f"{3:021d}", closed=False)


def test_caught_up_is_confirmed_against_a_fresh_listing(tmp_path: Path) -> None:
    streams = FakeStreams([FakeShard("shardId-a", records=[rec("INSERT", "a", 1)])])

    def appear(n: int) -> None:
        if n == 2:
            streams.shards.append(FakeShard("shardId-b", records=[rec("INSERT", "b", 2)]))

    streams.on_describe = appear
    target = FakeDynamo()
    summary = replicate_local(
        streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST, relist_interval=3600
    )
    assert summary.caught_up
    assert _items(target) == _model(("a", 1), ("b", 2))


def test_closed_shard_is_marked_closed_and_never_read_again(tmp_path: Path) -> None:
    shard = FakeShard("shardId-x", records=[rec("INSERT", "a", 1)], closed=True)
    streams = FakeStreams([shard])
    path = tmp_path / "cp.json"
    replicate_local(streams, FakeDynamo(), ARN, "T", path, until_caught_up=True, retry=FAST)
    assert json.loads(path.read_text()) == {"shardId-x": {"closed": True, "last_sequence": f"{1:021d}"}}
    streams.iterator_requests.clear()
    replicate_local(streams, FakeDynamo(), ARN, "T", path, until_caught_up=True, retry=FAST)
    assert streams.iterator_requests == []


# --------------------------------------------------------------------------------------------------
# Checkpoints and restarts
# --------------------------------------------------------------------------------------------------


def test_restart_resumes_after_the_checkpointed_sequence(tmp_path: Path) -> None:
    shard = FakeShard("shardId-1", records=[rec("INSERT", f"k{i}", i) for i in range(1, 6)])
    streams = FakeStreams([shard])
    path = tmp_path / "cp.json"
    first = replicate_local(streams, FakeDynamo(), ARN, "T", path, until_caught_up=True, retry=FAST)
    assert first.records_applied == 5
    assert streams.iterator_requests == [("shardId-1", "TRIM_HORIZON", None)]
    shard.records += [rec("MODIFY", "k1", 6, 60), rec("REMOVE", "k2", 7)]
    target = FakeDynamo()
    second = replicate_local(streams, target, ARN, "T", path, until_caught_up=True, retry=FAST)
    assert second.records_applied == 2
    assert streams.iterator_requests[1] == ("shardId-1", "AFTER_SEQUENCE_NUMBER", f"{5:021d}")
    assert _items(target) == _model(("k1", 60))


def test_checkpoint_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cp.json"
    save_checkpoints(path, {"shardId-1": ShardCheckpoint("5", False)})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        save_checkpoints(path, {"shardId-1": ShardCheckpoint("9", True)})
    monkeypatch.undo()
    assert load_checkpoints(path) == {"shardId-1": ShardCheckpoint("5", False)}
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]  # no temp file left behind


def test_a_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{not json")
    with pytest.raises(LocalReplicationError, match="checkpoint"):
        replicate_local(FakeStreams([]), FakeDynamo(), ARN, "T", path, until_caught_up=True)


def test_a_failed_key_holds_the_shard_back_and_is_retried_from_the_checkpoint(tmp_path: Path) -> None:
    records = [rec("INSERT", "a", 1), rec("INSERT", "f", 2), rec("INSERT", "b", 3), rec("MODIFY", "f", 4, 40)]
    streams = FakeStreams([FakeShard("shardId-1", records=records)])
    path = tmp_path / "cp.json"
    seen: list[ShardCheckpoint] = []
    refusals = {"left": 3}

    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        seen.append(load_checkpoints(path).get("shardId-1", ShardCheckpoint()))
        failing = [i for i, r in enumerate(requests) if r["PutRequest"]["Item"]["pk"]["S"] == "f"]
        if failing and refusals["left"] > 0:
            refusals["left"] -= 1
            return failing
        return None

    target = FakeDynamo(fault=fault)
    policy = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0)
    summary = replicate_local(streams, target, ARN, "T", path, until_caught_up=True, retry=policy)
    assert summary.failed_rounds == 3
    assert _items(target) == _model(("a", 1), ("b", 3), ("f", 40))
    # While f (first at seq 2) was failing the checkpoint never went past seq 1.
    assert all(cp.last_sequence in (None, f"{1:021d}") for cp in seen[:4])
    assert load_checkpoints(path)["shardId-1"].last_sequence == f"{4:021d}"


def test_a_write_the_target_keeps_refusing_stalls_with_a_clear_error(tmp_path: Path) -> None:
    records = [rec("INSERT", "a", 1), rec("INSERT", "bad", 2), rec("INSERT", "c", 3)]
    streams = FakeStreams([FakeShard("shardId-1", records=records)])

    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        if any(r["PutRequest"]["Item"]["pk"]["S"] == "bad" for r in requests):
            return client_error("ValidationException")
        return None

    path = tmp_path / "cp.json"
    with pytest.raises(ReplicationStalledError, match=r"refused a write.*ValidationException"):
        replicate_local(
            streams, FakeDynamo(fault=fault), ARN, "T", path, until_caught_up=True, retry=FAST, max_stalled_rounds=3
        )
    assert load_checkpoints(path)["shardId-1"].last_sequence == f"{1:021d}"


# --------------------------------------------------------------------------------------------------
# Trimmed and expired
# --------------------------------------------------------------------------------------------------


def test_trimmed_data_is_refused_loudly(tmp_path: Path) -> None:
    shard = FakeShard("shardId-1", records=[rec("INSERT", f"k{i}", i) for i in range(1, 11)])
    streams = FakeStreams([shard])
    path = tmp_path / "cp.json"
    save_checkpoints(path, {"shardId-1": ShardCheckpoint(f"{2:021d}", False)})
    streams.trimmed_before["shardId-1"] = 5  # records 3..5 aged out before they were replayed
    with pytest.raises(StreamTrimmedError, match="restart from a new export"):
        replicate_local(streams, FakeDynamo(), ARN, "T", path, until_caught_up=True, retry=FAST)


def test_trimmed_data_during_get_records_is_refused_loudly(tmp_path: Path) -> None:
    streams = FakeStreams([FakeShard("shardId-1", records=[rec("INSERT", "a", 1)])])

    def trim(shard_id: str, position: int) -> None:
        raise client_error("TrimmedDataAccessException", op="GetRecords")

    streams.before_get_records = trim
    with pytest.raises(StreamTrimmedError, match="lost"):
        replicate_local(streams, FakeDynamo(), ARN, "T", tmp_path / "cp.json", until_caught_up=True)


def test_a_checkpointed_shard_gone_from_the_stream_is_refused_as_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    save_checkpoints(path, {"shardId-old": ShardCheckpoint("7", closed=False)})
    streams = FakeStreams([FakeShard("shardId-new", records=[rec("INSERT", "a", 9)])])
    with pytest.raises(StreamTrimmedError, match="shardId-old"):
        replicate_local(streams, FakeDynamo(), ARN, "T", path, until_caught_up=True)


def test_an_expired_iterator_is_renewed_from_the_checkpoint(tmp_path: Path) -> None:
    records = [rec("INSERT", f"k{i}", i) for i in range(1, 8)]
    streams = FakeStreams([FakeShard("shardId-1", records=records)])
    streams.limit_for = lambda shard_id: 2
    expired: list[int] = []

    def expire(shard_id: str, position: int) -> None:
        if position in (2, 6) and position not in expired:
            expired.append(position)
            raise client_error("ExpiredIteratorException", op="GetRecords")

    streams.before_get_records = expire
    target = FakeDynamo()
    summary = replicate_local(streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST)
    assert expired == [2, 6]
    assert summary.records_applied == 7
    assert _items(target) == _model(*((f"k{i}", i) for i in range(1, 8)))
    renewals = [r for r in streams.iterator_requests if r[1] == "AFTER_SEQUENCE_NUMBER"]
    assert renewals == [
        ("shardId-1", "AFTER_SEQUENCE_NUMBER", f"{2:021d}"),
        ("shardId-1", "AFTER_SEQUENCE_NUMBER", f"{6:021d}"),
    ]


def test_transient_stream_errors_are_waited_out(tmp_path: Path) -> None:
    streams = FakeStreams([FakeShard("shardId-1", records=[rec("INSERT", "a", 1), rec("INSERT", "b", 2)])])
    streams.limit_for = lambda shard_id: 1
    errors = [
        client_error("LimitExceededException", op="GetRecords"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://streams"),
    ]

    def flaky(shard_id: str, position: int) -> None:
        if errors:
            raise errors.pop(0)

    def flaky_describe(n: int) -> None:
        if n == 1:
            raise client_error("LimitExceededException", op="DescribeStream")

    streams.before_get_records = flaky
    streams.on_describe = flaky_describe
    target = FakeDynamo()
    summary = replicate_local(
        streams, target, ARN, "T", tmp_path / "cp.json", until_caught_up=True, retry=FAST, poll_interval=0.01
    )
    assert summary.caught_up
    assert errors == []
    assert _items(target) == _model(("a", 1), ("b", 2))


def test_a_keys_only_stream_is_refused(tmp_path: Path) -> None:
    streams = FakeStreams([FakeShard("shardId-1")], view="KEYS_ONLY")
    with pytest.raises(LocalReplicationError, match="KEYS_ONLY"):
        replicate_local(streams, FakeDynamo(), ARN, "T", tmp_path / "cp.json", until_caught_up=True)


# --------------------------------------------------------------------------------------------------
# Progress and stopping
# --------------------------------------------------------------------------------------------------


def test_progress_reports_records_applied_and_lag(tmp_path: Path) -> None:
    records = [rec("INSERT", f"k{i}", i) for i in range(1, 6)]
    streams = FakeStreams([FakeShard("shardId-1", records=records)])
    streams.limit_for = lambda shard_id: 2
    reports: list[Progress] = []
    replicate_local(
        streams, FakeDynamo(), ARN, "T", tmp_path / "cp.json", until_caught_up=True, progress=reports.append
    )
    assert [p.records_applied for p in reports] == [2, 4, 5]
    assert all(p.lag_s is not None and p.lag_s > 1e7 for p in reports)  # created in 2023
    assert "5 records applied" in str(reports[-1])


def test_the_stop_event_ends_a_run_that_is_not_waiting_to_catch_up(tmp_path: Path) -> None:
    streams = FakeStreams([FakeShard("shardId-1", records=[rec("INSERT", "a", 1)])])
    stop = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        result["summary"] = replicate_local(
            streams, FakeDynamo(), ARN, "T", tmp_path / "cp.json", until_caught_up=False, stop=stop, poll_interval=0.01
        )

    thread = threading.Thread(target=run)
    thread.start()
    while streams.describe_calls < 3:
        thread.join(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert result["summary"].stopped
    assert result["summary"].records_applied == 1


# --------------------------------------------------------------------------------------------------
# Against the emulator
# --------------------------------------------------------------------------------------------------


def test_replicates_the_emulator_stream_into_the_target_until_caught_up(
    source: AccountSession, target: AccountSession, unique: str, tmp_path: Path
) -> None:
    src_name, dst_name = f"lsrc-{unique}", f"ldst-{unique}"
    desc = make_table(source, src_name)
    make_table(target, dst_name, stream=None, pitr=False)
    src = source.client("dynamodb")
    for i in range(30):
        src.put_item(TableName=src_name, Item={**keys(f"k{i % 10}"), "v": {"N": str(i)}, "b": {"B": bytes([i])}})
    src.delete_item(TableName=src_name, Key=keys("k3"))
    src.update_item(
        TableName=src_name,
        Key=keys("k4"),
        UpdateExpression="SET extra = :e",
        ExpressionAttributeValues={":e": {"SS": ["x", "y"]}},
    )
    path = tmp_path / "cp.json"
    streams = source.client("dynamodbstreams")
    dst = target.client("dynamodb")
    summary = replicate_local(streams, dst, desc["LatestStreamArn"], dst_name, path, until_caught_up=True)
    assert summary.caught_up
    assert summary.records_applied == 32

    assert scan_all(dst, dst_name) == scan_all(src, src_name)
    (shard_id,) = load_checkpoints(path)
    assert load_checkpoints(path)[shard_id].last_sequence is not None

    src.put_item(TableName=src_name, Item={**keys("late"), "v": {"N": "1"}})
    again = replicate_local(streams, dst, desc["LatestStreamArn"], dst_name, path, until_caught_up=True)
    assert again.records_applied == 1
    assert scan_all(dst, dst_name) == scan_all(src, src_name)
