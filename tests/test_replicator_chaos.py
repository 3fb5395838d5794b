"""Chaos: a live source table under random writes, replicated by the local driver through faults.

Size: 10,000 item operations on the source (single PutItem / UpdateItem / DeleteItem calls and
BatchWriteItem calls of up to 25 distinct keys) over 600 keys, with sets, binary, nested maps and
38-digit numbers, while the local driver replicates the source's stream into the target table.

Injected faults, per target ``BatchWriteItem`` call:
  * 5%  ``ProvisionedThroughputExceededException`` (nothing written)
  * 3%  ``InternalServerError`` 500 before the write (nothing written)
  * 2%  ``InternalServerError`` 500 *after* the write landed (ambiguous: the driver must not care)
  * 10% partial ``UnprocessedItems`` (each request of the call left unprocessed with probability ½)
  * 0.5% the driver is killed before the call, 0.5% killed after the call landed (mid-batch: other
        calls of the same batch may have landed or not); it is restarted from its checkpoint file
per ``GetRecords`` call: 2% ``ExpiredIteratorException``, 1% ``LimitExceededException``;
per checkpoint save: 2% the driver is killed just before the checkpoint is written.
On top of the random faults, the driver is always killed after the 20th, 60th and 100th target call
(after the write landed) and the 3rd and 10th GetRecords find their iterator expired, so every run
of the test sees kills and expiries whatever the dice say.
The core makes at most 2 attempts per call, so some batches fail outright and the shard is re-read
from its checkpoint — that path is exercised too.

At the end the source and the target are scanned in full: zero missing, zero different, zero
extraneous items.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import migrator.dataplane.stream as local_replicator
from migrator.aws.session import AccountSession
from migrator.dataplane.stream import ShardCheckpoint, replicate_local
from migrator.replicator.batch import RetryPolicy

from .conftest import key_id, make_table, scan_all
from .test_replicator_core import client_error

SEED = 20_261_128
OPERATIONS = 10_000
PKS = 300
SKS = 2
MAX_RUNS = 1000  # a hard stop, counted in driver runs (not seconds): each run makes progress or is killed

P_THROTTLE = 0.05
P_5XX_BEFORE = 0.03
P_5XX_AFTER = 0.02
P_PARTIAL = 0.10
P_KILL_BEFORE = 0.005
P_KILL_AFTER = 0.005
P_EXPIRED = 0.02
P_STREAM_THROTTLE = 0.01
P_KILL_BEFORE_CHECKPOINT = 0.02
SCHEDULED_KILLS = frozenset({20, 60, 100})  # target calls after which the driver is killed anyway
SCHEDULED_EXPIRIES = frozenset({3, 10})  # GetRecords calls that find their iterator expired anyway


class Killed(BaseException):
    """The driver process dies here (BaseException: nothing in the driver may swallow it)."""


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1


class ChaosTarget:
    def __init__(self, client: Any, rng: random.Random, stats: Stats) -> None:
        self.client = client
        self.rng = rng
        self.stats = stats

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        with self.stats.lock:
            self.stats.counts["calls"] = number = self.stats.counts.get("calls", 0) + 1
        if number in SCHEDULED_KILLS:  # on top of the random ones, so every run sees a few
            self.stats.add("kill_after")
            self.client.batch_write_item(RequestItems=RequestItems)
            raise Killed
        roll = self.rng.random()
        edge = 0.0
        for name, p in (
            ("throttle", P_THROTTLE),
            ("5xx_before", P_5XX_BEFORE),
            ("5xx_after", P_5XX_AFTER),
            ("partial", P_PARTIAL),
            ("kill_before", P_KILL_BEFORE),
            ("kill_after", P_KILL_AFTER),
        ):
            edge += p
            if roll < edge:
                self.stats.add(name)
                break
        else:
            return dict(self.client.batch_write_item(RequestItems=RequestItems))
        if name == "throttle":
            raise client_error("ProvisionedThroughputExceededException")
        if name == "5xx_before":
            raise client_error("InternalServerError", 500)
        if name == "kill_before":
            raise Killed
        if name in ("5xx_after", "kill_after"):
            self.client.batch_write_item(RequestItems=RequestItems)
            if name == "kill_after":
                raise Killed
            raise client_error("InternalServerError", 500)
        ((table, requests),) = RequestItems.items()
        left = [r for r in requests if self.rng.random() < 0.5]
        sent = [r for r in requests if not any(r is x for x in left)]
        if sent:
            self.client.batch_write_item(RequestItems={table: sent})
        return {"UnprocessedItems": {table: left} if left else {}}


class ChaosStreams:
    def __init__(self, client: Any, rng: random.Random, stats: Stats) -> None:
        self.calls = 0
        self.client = client
        self.rng = rng
        self.stats = stats

    def describe_stream(self, **kwargs: Any) -> Any:
        return self.client.describe_stream(**kwargs)

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        return self.client.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        self.calls += 1
        roll = self.rng.random()
        if roll < P_EXPIRED or self.calls in SCHEDULED_EXPIRIES:
            self.stats.add("expired")
            raise client_error("ExpiredIteratorException", op="GetRecords")
        if roll < P_EXPIRED + P_STREAM_THROTTLE:
            self.stats.add("stream_throttle")
            raise client_error("LimitExceededException", op="GetRecords")
        return self.client.get_records(**kwargs)


def _key(pk: int, sk: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{pk:04d}"}, "sk": {"S": f"s{sk}"}}


def _random_item(rng: random.Random, key: dict[str, Any], version: int) -> dict[str, Any]:
    item: dict[str, Any] = {**key, "version": {"N": str(version)}}
    if rng.random() < 0.5:
        item["n38"] = {"N": str(rng.randrange(10**37, 10**38))}
    if rng.random() < 0.5:
        item["blob"] = {"B": rng.randbytes(rng.randint(0, 64))}
    if rng.random() < 0.4:
        item["tags"] = {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(rng.randint(1, 4))})}
    if rng.random() < 0.3:
        item["doc"] = {
            "M": {
                "list": {"L": [{"N": str(rng.randint(-5, 5))}, {"S": ""}, {"BOOL": rng.random() < 0.5}]},
                "inner": {"M": {"bs": {"BS": [rng.randbytes(3)]}}},
            }
        }
    if rng.random() < 0.2:
        item["text"] = {"S": "é" * rng.randint(0, 300)}
    return item


def write_source(
    client: Any, table: str, rng: random.Random, done: threading.Event, stats: Stats, errors: list[BaseException]
) -> None:
    ops = 0
    version = 0
    began = time.monotonic()
    try:
        while ops < OPERATIONS:
            version += 1
            roll = rng.random()
            key = _key(rng.randrange(PKS), rng.randrange(SKS))
            if roll < 0.25:
                client.put_item(TableName=table, Item=_random_item(rng, key, version))
                ops += 1
            elif roll < 0.45:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET #v = :v, #t = :t ADD #c :one",
                    ExpressionAttributeNames={"#v": "version", "#t": "touched", "#c": "counter"},
                    ExpressionAttributeValues={
                        ":v": {"N": str(version)},
                        ":t": {"B": rng.randbytes(4)},
                        ":one": {"N": "1"},
                    },
                )
                ops += 1
            elif roll < 0.52:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="REMOVE #b, #d",
                    ExpressionAttributeNames={"#b": "blob", "#d": "doc"},
                )
                ops += 1
            elif roll < 0.65:
                client.delete_item(TableName=table, Key=key)
                ops += 1
            else:
                keys = {key_id(k): k for k in (_key(rng.randrange(PKS), rng.randrange(SKS)) for _ in range(25))}
                requests = [
                    {"DeleteRequest": {"Key": k}}
                    if rng.random() < 0.3
                    else {"PutRequest": {"Item": _random_item(rng, k, version)}}
                    for k in keys.values()
                ]
                client.batch_write_item(RequestItems={table: requests})
                ops += len(requests)
        stats.counts["source_ops"] = ops
        stats.counts["writer_ms"] = int((time.monotonic() - began) * 1000)
    except BaseException as error:
        errors.append(error)
        raise
    finally:
        done.set()


@pytest.mark.slow
def test_chaos_replication_ends_with_zero_missing_different_or_extraneous_items(
    source: AccountSession, target: AccountSession, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src_name, dst_name = f"chaos-src-{unique}", f"chaos-dst-{unique}"
    desc = make_table(source, src_name)
    make_table(target, dst_name, stream=None, pitr=False)
    src, dst = source.client("dynamodb"), target.client("dynamodb")
    stats = Stats()
    fault_rng = random.Random(SEED)
    chaos_target = ChaosTarget(dst, fault_rng, stats)
    chaos_streams = ChaosStreams(source.client("dynamodbstreams"), fault_rng, stats)

    real_save = local_replicator.save_checkpoints

    def dying_save(path: Path, checkpoints: dict[str, ShardCheckpoint]) -> None:
        if fault_rng.random() < P_KILL_BEFORE_CHECKPOINT:
            stats.add("kill_before_checkpoint")
            raise Killed
        real_save(path, checkpoints)

    monkeypatch.setattr(local_replicator, "save_checkpoints", dying_save)
    real_failed_round = local_replicator._Run._failed_round

    def counted_failed_round(self: Any, shard_id: str, refused: bool, reason: str) -> None:
        stats.add("failed_rounds")
        real_failed_round(self, shard_id, refused, reason)

    monkeypatch.setattr(local_replicator._Run, "_failed_round", counted_failed_round)

    done = threading.Event()
    writer_errors: list[BaseException] = []
    writer = threading.Thread(
        target=write_source, args=(src, src_name, random.Random(SEED + 1), done, stats, writer_errors), daemon=True
    )
    started = time.monotonic()
    writer.start()
    checkpoint = tmp_path / "checkpoints.json"
    policy = RetryPolicy(max_attempts=2, base_delay=0.002, max_delay=0.05)
    runs = kills = 0
    while True:
        assert runs < MAX_RUNS, f"no convergence in {MAX_RUNS} runs: {stats.counts}"
        writer_finished = done.is_set()
        runs += 1
        try:
            # A fresh driver each time: everything it knows comes from the checkpoint file.
            replicate_local(
                chaos_streams,
                chaos_target,
                desc["LatestStreamArn"],
                dst_name,
                checkpoint,
                until_caught_up=True,
                poll_interval=0.05,
                max_workers=4,
                retry=policy,
            )
        except Killed:
            kills += 1
            continue
        if writer_finished:
            break
    writer.join()
    assert not writer_errors, writer_errors
    elapsed = time.monotonic() - started

    source_items, target_items = scan_all(src, src_name), scan_all(dst, dst_name)
    missing = source_items.keys() - target_items.keys()
    extraneous = target_items.keys() - source_items.keys()
    different = [k for k in source_items.keys() & target_items.keys() if source_items[k] != target_items[k]]
    report = (
        f"seed={SEED} runs={runs} kills={kills} elapsed={elapsed:.1f}s faults={stats.counts} "
        f"missing={len(missing)} different={len(different)} extraneous={len(extraneous)}"
    )
    print(report)
    assert (len(missing), len(different), len(extraneous)) == (0, 0, 0), report
    assert stats.counts["source_ops"] >= OPERATIONS
    assert len(source_items) > 100, report  # the comparison is not vacuous
    # The scenario really happened: kills mid-batch and every kind of fault.
    assert kills >= 3, report
    for fault in ("throttle", "5xx_before", "5xx_after", "partial", "expired", "failed_rounds"):
        assert stats.counts.get(fault, 0) > 0, report
