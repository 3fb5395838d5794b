"""`migrator redrive`: failure records in S3 → the CURRENT source item of each key in the target."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.context import MigrationContext
from migrator.dataplane.redrive import (
    REDRIVEN_PREFIX,
    Unrecoverable,
    failure_object_keys,
    keys_from_stream,
    payload_records,
    redrive,
)

from .conftest import REGION, make_table, stream_record
from .support import migration, write_config

SHARD = "shardId-00000001541626099285-f35f62ef"


@dataclass
class Env:
    m: MigrationContext
    config: Path
    table: str
    src: Any
    tgt: Any
    s3: Any
    bucket: str
    stream_arn: str

    def put_record(self, record: dict[str, Any]) -> str:
        name = f"aws/lambda/{uuid.uuid4()}/{SHARD}/2026/01/01/2026-01-01T00.00.00-{uuid.uuid4()}"
        self.s3.put_object(Bucket=self.bucket, Key=name, Body=json.dumps(record).encode())
        return name

    def objects(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def source_item(self, k: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.src.get_item(TableName=self.table, Key=k, ConsistentRead=True).get("Item")
        return found

    def target_item(self, k: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.tgt.get_item(TableName=self.table, Key=k, ConsistentRead=True).get("Item")
        return found


@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str) -> Env:
    table = f"redrive-{unique}"
    config = write_config(tmp_path, moto_endpoint, f"rd-{unique}", table)
    m = migration(config)
    desc = make_table(source, table, pitr=False)
    make_table(target, table, stream=None, pitr=False)
    s3 = source.client("s3")
    s3.create_bucket(Bucket=m.config.failure_bucket_name)
    return Env(
        m,
        config,
        table,
        source.client("dynamodb"),
        target.client("dynamodb"),
        s3,
        m.config.failure_bucket_name,
        desc["LatestStreamArn"],
    )


def key(pk: str, sk: str = "0") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def item(pk: str, sk: str = "0", **attributes: dict[str, Any]) -> dict[str, Any]:
    return {**key(pk, sk), **attributes}


def invocation_record(
    env: Env,
    records: list[dict[str, Any]] | None,
    *,
    as_string: bool = False,
    start: str = "100000000000000000001",
    end: str = "100000000000000000009",
    batch_size: int | None = None,
    stream_arn: str | None = None,
) -> dict[str, Any]:
    """An on-failure invocation record as Lambda writes it to an S3 destination (see migrator/redrive.py)."""
    record: dict[str, Any] = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{REGION}:222222222222:function:replicator",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00Z",
            "approximateArrivalOfLastRecord": "2026-01-01T00:00:00Z",
            "batchSize": batch_size if batch_size is not None else len(records or []),
            "streamArn": stream_arn or env.stream_arn,
        },
    }
    if records is not None:
        payload = {"Records": records}
        record["payload"] = json.dumps(payload) if as_string else payload
    return record


def modify(k: dict[str, Any], seq: int, new: dict[str, Any]) -> dict[str, Any]:
    return stream_record("MODIFY", k, seq, new=new, old=new)


# --------------------------------------------------------------------------------------------------
# What lands in the target
# --------------------------------------------------------------------------------------------------


def test_redrive_writes_the_current_item_not_the_old_image(env: Env) -> None:
    current = item(
        "a",
        v={"N": "3"},
        tags={"SS": ["x", "y"]},
        blob={"B": b"\x00\xff"},
        big={"N": "12345678901234567890123456789012345678"},
    )
    env.src.put_item(TableName=env.table, Item=current)
    env.tgt.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    old_image = item("a", v={"N": "2"})
    env.put_record(invocation_record(env, [modify(key("a"), 5, old_image)]))

    result = redrive(env.m)

    assert env.target_item(key("a")) == env.source_item(key("a"))
    assert env.target_item(key("a"))["v"] == {"N": "3"}  # type: ignore[index]
    assert (result.keys, result.written, result.deleted, result.failed) == (1, 1, 0, 0)


def test_redrive_deletes_in_the_target_a_key_deleted_from_the_source(env: Env) -> None:
    env.tgt.put_item(TableName=env.table, Item=item("gone", v={"N": "1"}))
    # The failed record still says the item exists: redrive must not resurrect it.
    env.put_record(invocation_record(env, [modify(key("gone"), 5, item("gone", v={"N": "2"}))]))

    result = redrive(env.m)

    assert env.target_item(key("gone")) is None
    assert (result.written, result.deleted) == (0, 1)


def test_redrive_reads_a_payload_given_as_a_json_string(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("s", v={"S": "now"}))
    env.put_record(invocation_record(env, [modify(key("s"), 5, item("s", v={"S": "then"}))], as_string=True))

    result = redrive(env.m)

    assert env.target_item(key("s")) == item("s", v={"S": "now"})
    assert (result.keys, result.written, result.unrecoverable) == (1, 1, 0)


def test_redrive_recovers_the_keys_from_the_stream_range_when_there_is_no_payload(env: Env) -> None:
    for pk in ("a", "b", "c"):
        env.src.put_item(TableName=env.table, Item=item(pk, v={"N": "1"}))
    streams = env.m.source.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(StreamArn=env.stream_arn, ShardId=SHARD, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in streams.get_records(ShardIterator=iterator)["Records"]]
    assert len(seqs) == 3
    env.src.put_item(TableName=env.table, Item=item("b", v={"N": "2"}))  # after the failed batch
    env.put_record(invocation_record(env, None, start=seqs[1], end=seqs[2], batch_size=2))  # b and c

    result = redrive(env.m)

    assert env.target_item(key("a")) is None  # outside the range: untouched
    assert env.target_item(key("b")) == item("b", v={"N": "2"})  # current, not the range's image
    assert env.target_item(key("c")) == item("c", v={"N": "1"})
    assert (result.keys, result.written, result.unrecoverable, result.moved) == (2, 2, 0, 1)


def test_redrive_writes_a_key_named_by_several_objects_once(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("dup", v={"N": "9"}))
    env.src.put_item(TableName=env.table, Item=item("other", v={"N": "1"}))
    env.put_record(invocation_record(env, [modify(key("dup"), 5, item("dup", v={"N": "5"}))]))
    env.put_record(invocation_record(env, [modify(key("dup"), 6, item("dup", v={"N": "6"}))], as_string=True))
    env.put_record(
        invocation_record(
            env,
            [modify(key("dup"), 7, item("dup", v={"N": "7"})), modify(key("other"), 8, item("other", v={"N": "0"}))],
        )
    )
    puts: list[dict[str, Any]] = []
    spy_on_target_writes(env, puts)

    result = redrive(env.m)

    written = [r["PutRequest"]["Item"]["pk"]["S"] for r in puts if "PutRequest" in r]
    assert sorted(written) == ["dup", "other"]
    assert (result.objects, result.keys, result.written, result.moved) == (3, 2, 2, 3)
    assert env.target_item(key("dup")) == item("dup", v={"N": "9"})


def spy_on_target_writes(env: Env, requests: list[dict[str, Any]], before: Callable[[], None] | None = None) -> None:
    """Route the migration's target DynamoDB client through a proxy that records every write request."""
    real = env.m.target.client("dynamodb")

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def batch_write_item(self, **kwargs: Any) -> Any:
            if before is not None:
                before()
            for batch in kwargs["RequestItems"].values():
                requests.extend(batch)
            return real.batch_write_item(**kwargs)

    proxy = Proxy()
    original = env.m.target.client
    env.m.target.client = lambda service, **config: proxy if service == "dynamodb" else original(service, **config)  # type: ignore[method-assign]


def test_redrive_redoes_a_key_whose_source_item_changed_during_the_write(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("hot", v={"N": "1"}))
    env.put_record(invocation_record(env, [modify(key("hot"), 5, item("hot", v={"N": "0"}))]))
    calls: list[dict[str, Any]] = []

    def source_changes_and_replicator_writes_it_first() -> None:
        if not calls:  # only during the first write
            newer = item("hot", v={"N": "2"})
            env.src.put_item(TableName=env.table, Item=newer)
            env.tgt.put_item(TableName=env.table, Item=newer)

    spy_on_target_writes(env, calls, before=source_changes_and_replicator_writes_it_first)

    result = redrive(env.m)

    # Without the confirming read the redrive would leave v=1 (read before the change) in the target.
    assert env.target_item(key("hot")) == item("hot", v={"N": "2"})
    assert len(calls) == 2
    assert (result.written, result.failed) == (1, 0)


# --------------------------------------------------------------------------------------------------
# What happens to the failure records
# --------------------------------------------------------------------------------------------------


def test_redrive_moves_processed_objects_under_redriven_and_a_second_run_does_nothing(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    names = [
        env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))])),
        env.put_record(invocation_record(env, [modify(key("b"), 6, item("b"))])),
    ]

    first = redrive(env.m)

    assert env.objects() == sorted(REDRIVEN_PREFIX + n for n in names)
    assert failure_object_keys(env.s3, env.bucket) == []  # what `migrator status` counts as waiting
    assert (first.objects, first.moved) == (2, 2)
    assert env.m.state.section("redrive")["moved"] == 2
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "2"}))  # would be written if re-read

    second = redrive(env.m)

    assert (second.objects, second.keys, second.written, second.deleted, second.moved, second.ok) == (
        0,
        0,
        0,
        0,
        0,
        True,
    )
    assert env.target_item(key("a")) == item("a", v={"N": "1"})
    assert env.m.state.section("redrive")["objects"] == 0


def test_redrive_dry_run_changes_nothing(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "2"}))
    env.tgt.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    env.tgt.put_item(TableName=env.table, Item=item("gone", v={"N": "1"}))
    names = [
        env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))])),
        env.put_record(invocation_record(env, [modify(key("gone"), 6, item("gone"))])),
    ]

    result = redrive(env.m, dry_run=True)

    assert (result.dry_run, result.keys, result.written, result.deleted, result.moved) == (True, 2, 1, 1, 0)
    assert env.target_item(key("a")) == item("a", v={"N": "1"})
    assert env.target_item(key("gone")) == item("gone", v={"N": "1"})
    assert env.objects() == sorted(names)
    assert env.m.state.section("redrive") == {}


def test_redrive_leaves_in_place_an_object_whose_key_could_not_be_written(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str
) -> None:
    table = f"redrive-bad-{unique}"
    m = migration(write_config(tmp_path, moto_endpoint, f"rdb-{unique}", table))
    desc = make_table(source, table, range_key=False, pitr=False)
    # A target whose key type differs: every write of the source item is refused (ValidationException).
    target.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    source.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    s3 = source.client("s3")
    s3.create_bucket(Bucket=m.config.failure_bucket_name)
    env = Env(
        m,
        Path(),
        table,
        source.client("dynamodb"),
        target.client("dynamodb"),
        s3,
        m.config.failure_bucket_name,
        desc["LatestStreamArn"],
    )
    name = env.put_record(invocation_record(env, [modify({"pk": {"S": "a"}}, 5, {"pk": {"S": "a"}})]))

    result = redrive(m)

    assert (result.failed, result.moved, result.ok) == (1, 0, False)
    assert result.failed_keys[0]["key"] == {"pk": {"S": "a"}}
    assert "ValidationException" in result.failed_keys[0]["reason"]
    assert env.objects() == [name]


def test_redrive_reports_a_trimmed_range_as_unrecoverable_and_leaves_the_object(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    trimmed = env.put_record(invocation_record(env, None, batch_size=4))
    fine = env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))]))
    stubbed = boto3.client("dynamodbstreams", region_name=REGION)
    stubber = Stubber(stubbed)
    stubber.add_client_error(
        "get_shard_iterator",
        service_error_code="TrimmedDataAccessException",
        service_message="the requested data has been trimmed",
    )
    stubber.activate()
    original = env.m.source.client
    env.m.source.client = (  # type: ignore[method-assign]
        lambda service, **config: stubbed if service == "dynamodbstreams" else original(service, **config)
    )

    result = redrive(env.m)

    assert (result.unrecoverable, result.ok, result.moved) == (1, False, 1)
    assert result.unrecoverable_objects[0]["object"] == trimmed
    assert "TrimmedDataAccessException" in result.unrecoverable_objects[0]["reason"]
    assert env.objects() == sorted([trimmed, REDRIVEN_PREFIX + fine])
    assert env.target_item(key("a")) == item("a", v={"N": "1"})  # the recoverable object still redriven


def test_keys_from_stream_refuses_a_range_read_only_in_part() -> None:
    stubbed = boto3.client("dynamodbstreams", region_name=REGION)
    info = {
        "streamArn": "arn:aws:dynamodb:us-east-1:222222222222:table/T/stream/2026-01-01T00:00:00.000",
        "shardId": SHARD,
        "startSequenceNumber": f"{100:021d}",
        "endSequenceNumber": f"{300:021d}",
        "batchSize": 3,
    }
    with Stubber(stubbed) as stubber:
        stubber.add_response("get_shard_iterator", {"ShardIterator": "it-1"})
        record = stream_record("MODIFY", key("a"), 100, new=item("a"))
        del record["eventSourceARN"]  # not part of a GetRecords answer
        # the shard closes after one record: the range's other two records are gone
        stubber.add_response("get_records", {"Records": [record]})
        with pytest.raises(Unrecoverable, match="only in part"):
            keys_from_stream(stubbed, info)


def test_redrive_refuses_a_record_from_another_tables_stream(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    foreign = env.stream_arn.replace(f"table/{env.table}/", "table/SomeOtherTable/")
    name = env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))], stream_arn=foreign))

    result = redrive(env.m)

    assert (result.unrecoverable, result.keys, result.moved) == (1, 0, 0)
    assert env.target_item(key("a")) is None
    assert env.objects() == [name]


def test_payload_records_accepts_a_json_string_and_an_object() -> None:
    records = [stream_record("REMOVE", {"id": {"B": "AP8="}}, 1, old={"id": {"B": "AP8="}})]
    assert payload_records({"payload": {"Records": records}}) == records
    assert payload_records({"payload": json.dumps({"Records": records})}) == records
    assert payload_records({"payload": "not json"}) is None
    assert payload_records({}) is None


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------

JSON_FIELDS = {
    "objects",
    "keys",
    "written",
    "deleted",
    "unrecoverable",
    "failed",
    "moved",
    "dry_run",
    "direction",
    "bucket",
    "unrecoverable_objects",
    "failed_keys",
}


def test_cli_redrive_json_prints_one_line_and_exits_0_when_nothing_failed(env: Env) -> None:
    env.src.put_item(TableName=env.table, Item=item("a", v={"N": "1"}))
    env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))]))

    run = CliRunner().invoke(app, ["redrive", "--config", str(env.config), "--json"])

    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert set(data) == JSON_FIELDS
    assert {k: data[k] for k in ("objects", "keys", "written", "deleted", "failed", "moved")} == {
        "objects": 1,
        "keys": 1,
        "written": 1,
        "deleted": 0,
        "failed": 0,
        "moved": 1,
    }
    assert env.target_item(key("a")) == item("a", v={"N": "1"})


def test_cli_redrive_exits_1_and_names_verify_repair_when_a_record_is_unrecoverable(env: Env) -> None:
    env.s3.put_object(Bucket=env.bucket, Key="aws/lambda/x/garbage", Body=b"not json")

    run = CliRunner().invoke(app, ["redrive", "--config", str(env.config), "--json"])

    assert run.exit_code == 1
    assert json.loads(run.stdout.splitlines()[0])["unrecoverable"] == 1

    run = CliRunner().invoke(app, ["redrive", "--config", str(env.config)])

    assert run.exit_code == 1
    assert "migrator verify --repair" in run.stderr
    assert "Traceback" not in run.output


def test_cli_redrive_dry_run_moves_nothing(env: Env) -> None:
    name = env.put_record(invocation_record(env, [modify(key("a"), 5, item("a"))]))

    run = CliRunner().invoke(app, ["redrive", "--config", str(env.config), "--dry-run"])

    assert run.exit_code == 0, run.output
    assert "would delete 1" in run.stderr
    assert env.objects() == [name]


def test_cli_redrive_says_to_run_phase_2_when_the_bucket_is_missing(env: Env) -> None:
    env.s3.delete_bucket(Bucket=env.bucket)

    run = CliRunner().invoke(app, ["redrive", "--config", str(env.config)])

    assert run.exit_code == 1
    assert "run phase 2 first" in run.stderr
