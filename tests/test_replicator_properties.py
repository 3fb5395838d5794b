"""Properties: whatever the changes, batches, shard layout and faults, the target ends equal to the source.

The model of the source is a dict replayed from the operations; the stream is what DynamoDB would
write for them (INSERT / MODIFY with the full new image, REMOVE — nothing for deleting a missing item),
with increasing sequence numbers.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.aws.session import AccountSession
from migrator.dataplane.stream import replicate_local
from migrator.replicator.batch import RetryPolicy
from migrator.replicator.core import apply_records, last_applied_sequence

from .conftest import key_id, make_table, stream_record
from .test_local_replicator import ARN, FakeShard, FakeStreams
from .test_replicator_core import FakeDynamo, client_error

KEYS = [f"k{i}" for i in range(6)]
FAST = RetryPolicy(max_attempts=50, base_delay=0.0, max_delay=0.0, sleep=lambda s: None)

attribute_values = st.recursive(
    st.one_of(
        st.builds(lambda n: {"N": str(n)}, st.integers(min_value=-(10**37), max_value=10**38 - 1)),
        st.builds(lambda s: {"S": s}, st.text(max_size=8)),
        st.builds(lambda b: {"B": b}, st.binary(max_size=8)),
        st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(min_size=1, max_size=4), min_size=1, max_size=3)),
        st.builds(lambda s: {"BOOL": s}, st.booleans()),
    ),
    lambda children: st.one_of(
        st.builds(lambda xs: {"L": xs}, st.lists(children, max_size=3)),
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(min_size=1, max_size=3), children, max_size=3)),
    ),
    max_leaves=6,
)

operations = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.sampled_from(["put", "put", "delete"]),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), attribute_values, max_size=2),
    ),
    min_size=1,
    max_size=60,
)


def _keys(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "s"}}


@dataclass
class Change:
    pk: str
    record: dict[str, Any]


def to_stream(ops: list[tuple[str, str, dict[str, Any]]]) -> tuple[list[Change], dict[str, dict[str, Any]]]:
    """The stream records DynamoDB would emit for ``ops``, and the source's final state."""
    model: dict[str, dict[str, Any]] = {}
    changes: list[Change] = []
    seq = 100
    for pk, op, attrs in ops:
        key = key_id(_keys(pk))
        old = model.get(key)
        seq += random.choice([1, 7, 1000])  # increasing, not contiguous, different lengths
        if op == "put":
            new = {**attrs, **_keys(pk)}
            model[key] = new
            event = "MODIFY" if old is not None else "INSERT"
            changes.append(Change(pk, stream_record(event, _keys(pk), seq, new=new, old=old)))
        elif old is not None:
            del model[key]
            changes.append(Change(pk, stream_record("REMOVE", _keys(pk), seq, old=old)))
    for change in changes:
        change.record["dynamodb"]["SequenceNumber"] = str(int(change.record["dynamodb"]["SequenceNumber"]))
    return changes, model


def split(items: list[Any], cuts: list[int]) -> list[list[Any]]:
    points = sorted({c % (len(items) + 1) for c in cuts} | {0, len(items)})
    return [items[a:b] for a, b in itertools.pairwise(points) if b > a]


def flaky(rng: random.Random) -> Any:
    """Faults at high rates: throttling 15%, 5xx 10%, partial UnprocessedItems 25%."""

    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        roll = rng.random()
        if roll < 0.15:
            return client_error("ProvisionedThroughputExceededException")
        if roll < 0.25:
            return client_error("InternalServerError", 500)
        if roll < 0.50:
            return [i for i in range(len(requests)) if rng.random() < 0.5]
        return None

    return fault


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(ops=operations, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8), seed=st.integers(0, 2**32))
def test_batches_through_a_faulty_target_converge_to_the_source(
    ops: list[tuple[str, str, dict[str, Any]]], cuts: list[int], seed: int
) -> None:
    random.seed(seed)
    changes, model = to_stream(ops)
    target = FakeDynamo(key_names=("pk", "sk"), fault=flaky(random.Random(seed)))
    for batch in split([c.record for c in changes], cuts):
        result = apply_records(target, "T", batch, retry=FAST, max_workers=3)
        assert result.ok, result.failed
    assert target.items == model


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    failing=st.sets(st.sampled_from(KEYS)),
    seed=st.integers(0, 2**32),
)
def test_resuming_after_the_reported_sequence_loses_no_change(
    ops: list[tuple[str, str, dict[str, Any]]], failing: set[str], seed: int
) -> None:
    """Some keys fail in the first attempt; the batch is retried from the reported point, as Lambda does."""
    random.seed(seed)
    changes, model = to_stream(ops)
    records = [c.record for c in changes]
    if not records:
        return

    def refuse(n: int, requests: list[dict[str, Any]]) -> Any:
        def pk(r: dict[str, Any]) -> str:
            body = r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"]
            return str(body["pk"]["S"])

        return [i for i, r in enumerate(requests) if pk(r) in failing]

    target = FakeDynamo(fault=refuse)
    first = apply_records(target, "T", records, retry=RetryPolicy(max_attempts=1))
    lowest = first.lowest_failed_sequence
    resume_after = last_applied_sequence(records, first)
    if lowest is None:
        assert target.items == model
        return
    # Every record of a failed key is at or after the lowest failing sequence …
    failed_pks = {str(f.keys["pk"]["S"]) for f in first.failed}
    assert all(int(c.record["dynamodb"]["SequenceNumber"]) >= int(lowest) for c in changes if c.pk in failed_pks)
    # … and resuming after the checkpoint (Lambda: from the reported record on) repairs the target.
    rest = [r for r in records if resume_after is None or int(r["dynamodb"]["SequenceNumber"]) > int(resume_after)]
    assert rest[0]["dynamodb"]["SequenceNumber"] == lowest
    target.fault = None
    assert apply_records(target, "T", rest).ok
    assert target.items == model


@st.composite
def shard_layouts(draw: st.DrawFn) -> tuple[list[tuple[str, str, dict[str, Any]]], list[int], int]:
    return draw(operations), draw(st.lists(st.integers(0, 1000), max_size=6)), draw(st.integers(0, 2**32))


def build_shards(changes: list[Change], splits: list[int], rng: random.Random) -> list[FakeShard]:
    """Root shards over key ranges; at each split point an open shard closes into 1 or 2 children."""
    counter = iter(range(1_000_000))
    roots = rng.randint(1, 3)
    open_shards: dict[str, tuple[FakeShard, list[str]]] = {}
    all_shards: list[FakeShard] = []
    for r in range(roots):
        shard = FakeShard(f"shardId-{next(counter):06d}")
        open_shards[shard.shard_id] = (shard, KEYS[r::roots])
        all_shards.append(shard)
    split_at = {s % (len(changes) + 1) for s in splits}
    for index, change in enumerate(changes):
        if index in split_at:
            sid = rng.choice(sorted(open_shards))
            shard, covered = open_shards.pop(sid)
            shard.closed = True
            halves = [covered[: len(covered) // 2], covered[len(covered) // 2 :]] if rng.random() < 0.5 else [covered]
            for half in (h for h in halves if h):
                child = FakeShard(f"shardId-{next(counter):06d}", parent=sid)
                open_shards[child.shard_id] = (child, half)
                all_shards.append(child)
        owner = next(s for s, cov in open_shards.values() if change.pk in cov)
        owner.records.append(change.record)
    rng.shuffle(all_shards)  # the listing order says nothing about lineage
    return all_shards


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=shard_layouts())
def test_local_driver_over_random_shard_layouts_converges_to_the_source(
    layout: tuple[list[tuple[str, str, dict[str, Any]]], list[int], int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    ops, splits, seed = layout
    rng = random.Random(seed)
    random.seed(seed)
    changes, model = to_stream(ops)
    streams = FakeStreams(build_shards(changes, splits, rng), page_size=rng.randint(1, 4))
    streams.limit_for = lambda shard_id: rng.randint(1, 5)
    expired: set[tuple[str, int]] = set()

    def expire(shard_id: str, position: int) -> None:
        if rng.random() < 0.1 and (shard_id, position) not in expired:
            expired.add((shard_id, position))
            raise client_error("ExpiredIteratorException", op="GetRecords")

    streams.before_get_records = expire
    target = FakeDynamo(fault=flaky(rng))
    path = tmp_path_factory.mktemp("cp") / "checkpoints.json"
    summary = replicate_local(streams, target, ARN, "T", path, until_caught_up=True, retry=FAST, max_workers=2)
    assert summary.caught_up
    assert target.items == model


@pytest.fixture(scope="module")
def emulator_table(moto_endpoint: str) -> tuple[Any, str]:
    session = AccountSession(
        account_id="111111111111",
        region="us-east-1",
        role_arn="arn:aws:iam::111111111111:role/Ops",
        endpoint_url=moto_endpoint,
    )
    name = f"props-{random.randrange(16**8):08x}"
    make_table(session, name, stream=None, pitr=False)
    return session.client("dynamodb"), name


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6), seed=st.integers(0, 2**32))
def test_batches_applied_to_the_emulator_converge_to_the_source(
    emulator_table: tuple[Any, str], ops: list[tuple[str, str, dict[str, Any]]], cuts: list[int], seed: int
) -> None:
    client, table = emulator_table
    for pk in KEYS:  # start each example empty
        client.delete_item(TableName=table, Key=_keys(pk))
    random.seed(seed)
    changes, model = to_stream(ops)
    for batch in split([c.record for c in changes], cuts):
        assert apply_records(client, table, batch).ok
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    assert {key_id({"pk": i["pk"], "sk": i["sk"]}): i for i in items} == model


def test_the_models_really_differ_when_order_is_broken() -> None:
    """Sanity check of the property harness: applying a batch in reverse does not match the model."""
    ops = [("k0", "put", {"a": {"N": "1"}}), ("k0", "put", {"a": {"N": "2"}})]
    changes, model = to_stream(ops)
    target = FakeDynamo()
    for record in reversed([c.record for c in changes]):
        apply_records(target, "T", [record])
    assert target.items != model
