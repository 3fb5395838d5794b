"""The emulator runs enabled event source mappings on DynamoDB streams, as Lambda does.

Functions and mappings are created with boto3 against the session's emulator, with the settings the
``stream_replicator`` module gives them: the replicator's zip (``build_zip_bytes``), or a small probe
function whose records say what it should do (crash, hang, raise, report a failure, always fail) and
which logs every invocation (pid, sequence numbers, context) to a file of the test.

Every wait is for a condition, with a generous timeout; nothing asserts how long anything took.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrator.aws.session import AccountSession
from migrator.dataplane.redrive import keys_from_stream, payload_records, record_keys, redrive
from migrator.dev.emulator import Emulator, find_emulator
from migrator.dev.lambda_runtime import MappingStats, lambda_record, wire
from migrator.infra.package import build_zip_bytes

from .conftest import REGION, SOURCE_ACCOUNT, TARGET_ACCOUNT, make_table
from .support import migration, write_config

WAIT_S = 60.0
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
BIG = "12345678901234567890123456789012345678"  # 38 digits

PROBE = """
import json, os, sys, time

PID = os.getpid()
COUNT = 0


def _once(seq, action):
    marker = os.path.join(os.environ["PROBE_DIR"], f"{seq}.{action}")
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True


def handler(event, context):
    global COUNT
    COUNT += 1
    line = {
        "pid": PID,
        "count": COUNT,
        "seqs": [r["dynamodb"]["SequenceNumber"] for r in event["Records"]],
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "env": {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
                                               "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "PROBE_SETTING",
                                               "AWS_LAMBDA_FUNCTION_TIMEOUT", "LAMBDA_TASK_ROOT",
                                               "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")},
        "path": sys.path,
        "event": event,
    }
    try:
        import migrator  # noqa: F401
        line["migrator"] = "importable"
    except ImportError as error:
        line["migrator"] = f"{type(error).__name__}: {error}"
    import boto3

    line["boto3"] = boto3.__version__
    line["identity"] = boto3.client("sts").get_caller_identity()["Account"]
    with open(os.path.join(os.environ["PROBE_DIR"], "calls.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\\n")
    for r in event["Records"]:
        action = r["dynamodb"].get("NewImage", {}).get("action", {}).get("S")
        seq = r["dynamodb"]["SequenceNumber"]
        if action == "crash" and _once(seq, action):
            os._exit(3)
        if action == "hang" and _once(seq, action):
            time.sleep(120)
        if action == "raise" and _once(seq, action):
            raise RuntimeError("asked to fail once")
        if action == "report" and _once(seq, action):
            return {"batchItemFailures": [{"itemIdentifier": seq}]}
        if action == "poison":
            raise ValueError("a poison record")
    return {"batchItemFailures": []}
"""


def probe_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("probe.py", PROBE)
    return buf.getvalue()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until it returns something truthy (returned), or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def canonical(item: dict[str, Any]) -> dict[str, Any]:
    def value(v: dict[str, Any]) -> dict[str, Any]:
        ((tag, inner),) = v.items()
        if tag in ("SS", "NS", "BS"):
            return {tag: sorted(inner)}
        if tag == "M":
            return {"M": {k: value(x) for k, x in inner.items()}}
        if tag == "L":
            return {"L": [value(x) for x in inner]}
        return {tag: inner}

    return {k: value(v) for k, v in item.items()}


def scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(canonical(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=repr)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stream_sequences(source: AccountSession, stream_arn: str) -> list[str]:
    streams = source.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    return [r["dynamodb"]["SequenceNumber"] for r in records]


def writer_assumptions(role_arn: str) -> int:
    from moto.sts.models import sts_backends

    return sum(1 for r in sts_backends[TARGET_ACCOUNT]["aws"].assumed_roles if r.role_arn == role_arn)


@dataclass
class Rig:
    """Builds functions and mappings in the source account, and removes the mappings afterwards."""

    emulator: Emulator
    endpoint: str
    source: AccountSession
    target: AccountSession
    unique: str
    tmp: Path
    mappings: list[str] = field(default_factory=list)

    @property
    def lam(self) -> Any:
        return self.source.client("lambda")

    @property
    def probe_dir(self) -> Path:
        path = self.tmp / "probe"
        path.mkdir(exist_ok=True)
        return path

    def table(self, name: str, **kwargs: Any) -> str:
        return str(make_table(self.source, name, pitr=False, **kwargs)["LatestStreamArn"])

    def function(self, name: str, *, replicator: dict[str, str] | None = None, timeout: int = 30) -> str:
        role = self.source.client("iam").create_role(
            RoleName=f"{name}-exec", AssumeRolePolicyDocument=json.dumps(TRUST)
        )
        if replicator is not None:
            code, handler, env = build_zip_bytes(), "replicator.handler.handler", replicator
        else:
            code, handler, env = probe_zip(), "probe.handler", {"PROBE_DIR": str(self.probe_dir), "PROBE_SETTING": "x"}
        self.lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler=handler,
            Code={"ZipFile": code},
            Timeout=timeout,
            MemorySize=512,
            Environment={"Variables": env},
        )
        return name

    def mapping(self, stream_arn: str, function: str, *, enabled: bool = True, **settings: Any) -> str:
        spec: dict[str, Any] = {
            "EventSourceArn": stream_arn,
            "FunctionName": function,
            "Enabled": enabled,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 0,
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 10,
            "MaximumRecordAgeInSeconds": -1,
            "ParallelizationFactor": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }
        spec.update(settings)
        uuid = str(self.lam.create_event_source_mapping(**spec)["UUID"])
        self.mappings.append(uuid)
        return uuid

    def stats(self, uuid: str) -> MappingStats | None:
        return self.emulator.lambda_stats().get(uuid)

    def calls(self) -> list[dict[str, Any]]:
        path = self.probe_dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def delivered(self) -> list[str]:
        return [s for c in self.calls() for s in c["seqs"]]

    def discovery_passes(self, n: int) -> None:
        """Let the runtime look at the mappings ``n`` more times (a count of passes, not a duration)."""
        runtime = self.emulator.runtime
        assert runtime is not None
        start = runtime.cycles
        wait_for(lambda: runtime.cycles >= start + n, f"{n} discovery passes")

    def replicator_env(self, target_table: str) -> tuple[dict[str, str], str]:
        writer = f"arn:aws:iam::{TARGET_ACCOUNT}:role/writer-{self.unique}"
        self.target.client("iam").create_role(
            RoleName=f"writer-{self.unique}", AssumeRolePolicyDocument=json.dumps(TRUST)
        )
        env = {
            "TARGET_TABLE": target_table,
            "TARGET_REGION": REGION,
            "WRITER_ROLE_ARN": writer,
            "EXTERNAL_ID": f"ext-{self.unique}",
            "RETRY_MAX_ATTEMPTS": "8",
            "RETRY_BASE_DELAY_S": "0.05",
            "RETRY_MAX_DELAY_S": "1",
            "TARGET_ENDPOINT_URL": self.endpoint,
        }
        return env, writer


@pytest.fixture
def rig(
    moto_endpoint: str, source: AccountSession, target: AccountSession, unique: str, tmp_path: Path
) -> Iterator[Rig]:
    emulator = find_emulator(moto_endpoint)
    assert emulator is not None and emulator.runtime is not None, "the session's emulator runs no Lambda"
    r = Rig(emulator, moto_endpoint, source, target, unique, tmp_path)
    yield r
    for uuid in r.mappings:  # the session's emulator outlives the test: stop polling its streams
        r.lam.delete_event_source_mapping(UUID=uuid)


def binary_key_tables(rig: Rig, name: str) -> str:
    """A source table keyed by (B, N) with a stream, and the same table in the target account."""
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "B"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    rig.target.client("dynamodb").create_table(**spec)
    desc = rig.source.client("dynamodb").create_table(
        **spec, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )
    return str(desc["TableDescription"]["LatestStreamArn"])


# --------------------------------------------------------------------------------------------------
# The event Lambda hands a function
# --------------------------------------------------------------------------------------------------


def test_a_get_records_record_becomes_lambdas_json_with_base64_binary_and_epoch_seconds() -> None:
    arn = "arn:aws:dynamodb:eu-west-1:222222222222:table/T/stream/2026-01-01T00:00:00.000"
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=dt.UTC)
    record = {
        "eventID": "e1",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "ApproximateCreationDateTime": when,
            "Keys": {"id": {"B": b"\x00\xff"}},
            "OldImage": {
                "id": {"B": b"\x00\xff"},
                "bs": {"BS": [b"a", b"\x01"]},
                "m": {"M": {"l": {"L": [{"B": b"z"}, {"N": BIG}]}}},
            },
            "SequenceNumber": "100",
            "SizeBytes": 9,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    out = lambda_record(record, arn)
    assert out["dynamodb"]["ApproximateCreationDateTime"] == when.timestamp()
    assert out["dynamodb"]["Keys"] == {"id": {"B": "AP8="}}
    assert out["dynamodb"]["OldImage"] == {
        "id": {"B": "AP8="},
        "bs": {"BS": ["YQ==", "AQ=="]},
        "m": {"M": {"l": {"L": [{"B": "eg=="}, {"N": BIG}]}}},
    }
    assert (out["awsRegion"], out["eventSourceARN"], out["eventSource"]) == ("eu-west-1", arn, "aws:dynamodb")
    assert out["userIdentity"] == record["userIdentity"]
    assert json.loads(json.dumps(out)) == out
    assert wire({"S": "x"}) == {"S": "x"}


# --------------------------------------------------------------------------------------------------
# The replicator, deployed as Terraform deploys it
# --------------------------------------------------------------------------------------------------


def test_an_enabled_mapping_replicates_inserts_modifies_and_removes_byte_for_byte(rig: Rig) -> None:
    table = f"esm-bin-{rig.unique}"
    stream = binary_key_tables(rig, table)
    env, _ = rig.replicator_env(table)
    function = rig.function(f"repl-{rig.unique}", replicator=env)
    uuid = rig.mapping(stream, function, BatchSize=4, MaximumBatchingWindowInSeconds=1)
    src = rig.source.client("dynamodb")

    def key(i: int) -> dict[str, Any]:
        return {"id": {"B": bytes([0, i, 255]) + b"\x00key"}, "n": {"N": BIG if i % 2 else str(i)}}

    for i in range(8):
        src.put_item(
            TableName=table,
            Item={
                **key(i),
                "big": {"N": "-" + BIG},
                "text": {"S": f'名前 "{i}" \\ \n'},
                "blob": {"B": bytes(range(i, 256))},
                "bs": {"BS": [b"\x00", bytes([i + 1])]},
                "ns": {"NS": ["0.5", BIG]},
                "deep": {"M": {"l": {"L": [{"B": b"\xff"}, {"NULL": True}, {"BOOL": True}]}}},
            },
        )
    for i in (1, 2, 5):
        src.update_item(
            TableName=table,
            Key=key(i),
            UpdateExpression="SET #t = :t, #b = :b REMOVE bs",
            ExpressionAttributeNames={"#t": "text", "#b": "blob"},
            ExpressionAttributeValues={":t": {"S": "changed ✓"}, ":b": {"B": b"\x00changed\xff"}},
        )
    for i in (0, 5):
        src.delete_item(TableName=table, Key=key(i))
    src.put_item(TableName=table, Item={**key(0), "text": {"S": "back again"}})

    want = scan(src, table)
    assert len(want) == 7
    tgt = rig.target.client("dynamodb")
    wait_for(lambda: scan(tgt, table) == want, "the target to equal the source")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    assert scan(tgt, table) == want
    stats = rig.stats(uuid)
    assert stats is not None
    assert stats.records == len(stream_sequences(rig.source, stream)) == 14
    assert (stats.errors, stats.failed_records, stats.partial_batches) == (0, 0, 0)
    assert stats.invocations == stats.batches >= 4  # BatchSize 4: at least four batches for 14 records
    assert stats.records_per_s is None or stats.records_per_s > 0


def test_the_interpreter_stays_warm_and_the_writer_role_is_assumed_once(rig: Rig) -> None:
    table = f"esm-warm-{rig.unique}"
    stream = rig.table(table)
    make_table(rig.target, table, stream=None, pitr=False)
    env, writer = rig.replicator_env(table)
    function = rig.function(f"warm-{rig.unique}", replicator=env)
    uuid = rig.mapping(stream, function, enabled=False, BatchSize=2)
    src = rig.source.client("dynamodb")
    for i in range(7):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}, "v": {"N": str(i)}})
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    tgt = rig.target.client("dynamodb")
    wait_for(lambda: len(scan(tgt, table)) == 7, "seven items in the target")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])  # the poller's bookkeeping is done too
    stats = rig.stats(uuid)
    assert stats is not None
    assert stats.invocations == stats.batches == 4  # 2 + 2 + 2 + 1
    assert stats.cold_starts == 1  # one interpreter took every batch …
    assert writer_assumptions(writer) == 1  # … so the handler's cached writer-role client was reused
    assert scan(tgt, table) == scan(src, table)


def test_iterator_age_invocations_and_errors_are_published_for_the_function(rig: Rig) -> None:
    table = f"esm-age-{rig.unique}"
    stream = rig.table(table)
    function = rig.function(f"age-{rig.unique}")
    uuid = rig.mapping(stream, function, enabled=False)
    src = rig.source.client("dynamodb")
    first_written = time.time()
    for i in range(3):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}})
    last_written = time.time()
    rig.discovery_passes(2)  # the records age while the mapping is disabled
    enabled_at = time.time()
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_for(lambda: len(rig.delivered()) == 3, "three records delivered")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    checked_at = time.time()

    cloudwatch = rig.source.client("cloudwatch")

    def statistic(metric: str, stat: str) -> float | None:
        now = dt.datetime.now(dt.UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": function}],
            StartTime=now - dt.timedelta(minutes=10),
            EndTime=now + dt.timedelta(minutes=1),
            Period=60,
            Statistics=[stat],
        )["Datapoints"]
        return (
            max((float(p[stat]) for p in points), default=None)
            if stat == "Maximum"
            else sum(float(p[stat]) for p in points)
        )

    age = wait_for(lambda: statistic("IteratorAge", "Maximum"), "an IteratorAge datapoint")
    # the last record was written before `last_written` and sent after `enabled_at`
    assert (enabled_at - last_written) * 1000 - 1 <= age <= (checked_at - first_written) * 1000 + 2
    stats = rig.stats(uuid)
    assert stats is not None
    wait_for(lambda: statistic("Invocations", "Sum") == stats.invocations >= 1, "Invocations to match")
    assert statistic("Errors", "Sum") == 0


# --------------------------------------------------------------------------------------------------
# Enabled, disabled, updated
# --------------------------------------------------------------------------------------------------


def test_a_disabled_mapping_delivers_nothing_and_the_stream_keeps_every_record_until_enabled(rig: Rig) -> None:
    table = f"esm-off-{rig.unique}"
    stream = rig.table(table)
    function = rig.function(f"off-{rig.unique}")
    uuid = rig.mapping(stream, function, enabled=False, BatchSize=100)
    src = rig.source.client("dynamodb")
    for i in range(6):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}})

    rig.discovery_passes(4)
    assert rig.calls() == []
    assert rig.stats(uuid) is None  # no poller was ever started for it
    in_stream = stream_sequences(rig.source, stream)
    assert len(in_stream) == 6  # the stream keeps every record

    # enabling (with a batch size changed by the API) delivers them all, from TRIM_HORIZON, in order
    rig.lam.update_event_source_mapping(UUID=uuid, BatchSize=4)
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_for(lambda: len(rig.delivered()) == 6, "six records delivered")
    assert [len(c["seqs"]) for c in rig.calls()] == [4, 2]
    assert rig.delivered() == in_stream

    # disabling stops delivery (after the batch in flight); the records wait in the stream
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    wait_for(lambda: (s := rig.stats(uuid)) is not None and s.state == "Disabled", "the poller to park")
    for i in range(6, 9):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}})
    rig.discovery_passes(4)
    assert len(rig.delivered()) == 6
    assert len(stream_sequences(rig.source, stream)) == 9

    # enabled again: it goes on from where it stands, nothing delivered twice
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_for(lambda: len(rig.delivered()) == 9, "the three new records delivered")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    assert rig.delivered() == stream_sequences(rig.source, stream)
    stats = rig.stats(uuid)
    assert stats is not None
    assert (stats.records, stats.batches, stats.state) == (9, 3, "Enabled")


# --------------------------------------------------------------------------------------------------
# The function's interpreter
# --------------------------------------------------------------------------------------------------


def test_the_function_runs_in_an_interpreter_where_migrator_is_not_importable(rig: Rig) -> None:
    table = f"esm-iso-{rig.unique}"
    stream = rig.table(table)
    function = rig.function(f"iso-{rig.unique}", timeout=7)
    rig.mapping(stream, function)
    rig.source.client("dynamodb").put_item(
        TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "b": {"B": b"\x00\xff"}}
    )
    call = wait_for(lambda: rig.calls(), "one invocation")[0]

    assert call["migrator"] == "ModuleNotFoundError: No module named 'migrator'"
    assert call["boto3"]  # boto3 is there, as in Lambda's Python runtime
    assert not [p for p in call["path"] if "site-packages" in p]
    assert call["identity"] == SOURCE_ACCOUNT  # the execution role's credentials, against the emulator
    assert call["env"]["AWS_LAMBDA_FUNCTION_NAME"] == call["function_name"] == function
    assert call["env"]["AWS_REGION"] == call["env"]["AWS_DEFAULT_REGION"] == REGION
    assert call["env"]["AWS_SESSION_TOKEN"] and call["env"]["AWS_ACCESS_KEY_ID"]
    assert (call["env"]["PROBE_SETTING"], call["env"]["AWS_LAMBDA_FUNCTION_TIMEOUT"]) == ("x", "7")
    # emulator only: the function's clients talk to the emulator over TLS and trust its CA
    assert call["env"]["AWS_ENDPOINT_URL"] == rig.emulator.endpoint
    assert call["env"]["AWS_CA_BUNDLE"] == str(rig.emulator.ca_bundle)
    assert call["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:{SOURCE_ACCOUNT}:function:{function}"
    assert call["memory_limit_in_mb"] == 512
    assert 0 < call["remaining_ms"] <= 7000
    record = call["event"]["Records"][0]
    assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == stream
    assert record["dynamodb"]["NewImage"]["b"] == {"B": base64.b64encode(b"\x00\xff").decode()}
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int | float)


def test_a_crashed_or_timed_out_interpreter_is_replaced_and_an_exception_keeps_it_warm(rig: Rig) -> None:
    table = f"esm-crash-{rig.unique}"
    stream = rig.table(table)
    function = rig.function(f"crash-{rig.unique}", timeout=2)
    uuid = rig.mapping(stream, function, enabled=False, BatchSize=1)
    src = rig.source.client("dynamodb")
    actions = ["ok", "crash", "ok", "raise", "ok", "hang", "ok"]
    for i, action in enumerate(actions):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}, "action": {"S": action}})
    seqs = stream_sequences(rig.source, stream)
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    wait_for(lambda: rig.delivered()[-1:] == seqs[-1:], "the last record delivered")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    calls = rig.calls()
    assert [c["seqs"][0] for c in calls] == [
        seqs[0],
        seqs[1],  # crashes
        seqs[1],  # retried in a fresh interpreter
        seqs[2],
        seqs[3],  # raises: a function error, the interpreter survives
        seqs[3],
        seqs[4],
        seqs[5],  # hangs past the timeout: killed
        seqs[5],  # retried in a fresh interpreter
        seqs[6],
    ]
    pids = [c["pid"] for c in calls]
    first, second, third = pids[0], pids[2], pids[8]
    assert len({first, second, third}) == 3
    assert pids == [first, first, second, second, second, second, second, second, third, third]
    assert calls[3]["count"] == 2 and calls[5]["count"] == 4  # module state survives in a warm interpreter
    stats = rig.stats(uuid)
    assert stats is not None
    assert (stats.errors, stats.cold_starts, stats.records, stats.failed_records) == (3, 3, 7, 0)
    assert rig.emulator.runtime is not None
    log = rig.emulator.runtime.log_path(function).read_text()
    assert "asked to fail once" in log and "REPORT RequestId" in log


# --------------------------------------------------------------------------------------------------
# Failures: partial batches, retries, the on-failure destination
# --------------------------------------------------------------------------------------------------


def test_a_reported_batch_item_failure_resumes_at_that_sequence_number(rig: Rig) -> None:
    table = f"esm-part-{rig.unique}"
    stream = rig.table(table)
    function = rig.function(f"part-{rig.unique}")
    uuid = rig.mapping(stream, function, enabled=False, BatchSize=10)
    src = rig.source.client("dynamodb")
    for i, action in enumerate(["ok", "ok", "report", "ok", "ok"]):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}, "action": {"S": action}})
    seqs = stream_sequences(rig.source, stream)
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    wait_for(lambda: len(rig.calls()) == 2, "the batch and its retry")
    assert [c["seqs"] for c in rig.calls()] == [seqs, seqs[2:]]  # checkpointed before the reported record
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    assert len(rig.calls()) == 2
    stats = rig.stats(uuid)
    assert stats is not None
    assert (stats.partial_batches, stats.batches, stats.records, stats.errors) == (1, 1, 5, 0)


def test_exhausted_retries_go_to_the_s3_destination_in_the_shape_redrive_reads(rig: Rig) -> None:
    table = f"esm-dlq-{rig.unique}"
    m = migration(write_config(rig.tmp, rig.endpoint, f"esm-{rig.unique}", table))
    bucket = m.config.failure_bucket_name
    stream = rig.table(table)
    make_table(rig.target, m.config.target_table_name, stream=None, pitr=False)
    rig.source.client("s3").create_bucket(Bucket=bucket)
    function = rig.function(f"dlq-{rig.unique}")
    uuid = rig.mapping(
        stream,
        function,
        enabled=False,
        BatchSize=10,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}},
    )
    src = rig.source.client("dynamodb")
    for i, action in enumerate(["ok", "ok", "ok", "poison"]):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}, "action": {"S": action}})
    seqs = stream_sequences(rig.source, stream)
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    s3 = rig.source.client("s3")
    listed = wait_for(lambda: s3.list_objects_v2(Bucket=bucket).get("Contents"), "an object in the destination")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    # bisected on each error, the poison record alone exhausts its 2 retries; the others were delivered
    assert [c["seqs"] for c in rig.calls()] == [seqs, seqs[:2], seqs[2:], seqs[2:3], seqs[3:]]
    assert len(listed) == 1
    shard = rig.source.client("dynamodbstreams").describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]
    name = listed[0]["Key"]
    assert re.fullmatch(
        rf"aws/lambda/{uuid}/{re.escape(shard['ShardId'])}/\d{{4}}/\d\d/\d\d/"
        r"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d-[0-9a-f-]{36}",
        name,
    ), name
    record = json.loads(s3.get_object(Bucket=bucket, Key=name)["Body"].read())
    assert set(record) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo", "payload"}
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(f":function:{function}")
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["version"] == "1.0"
    info = record["DDBStreamBatchInfo"]
    assert (info["shardId"], info["streamArn"], info["batchSize"]) == (shard["ShardId"], stream, 1)
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[3]
    assert isinstance(record["payload"], str)
    poison_key = {"pk": {"S": "p3"}, "sk": {"S": "s"}}
    assert [r["dynamodb"]["Keys"] for r in payload_records(record) or []] == [poison_key]
    assert record_keys(record, None, SOURCE_ACCOUNT, table) == [poison_key]
    assert keys_from_stream(rig.source.client("dynamodbstreams"), info) == [poison_key]
    stats = rig.stats(uuid)
    assert stats is not None
    assert (stats.failed_batches, stats.failed_records, stats.destination_objects, stats.records) == (1, 1, 1, 3)

    result = redrive(m)  # the redrive command on what the emulated Lambda wrote
    assert (result.objects, result.keys, result.written, result.unrecoverable, result.moved) == (1, 1, 1, 0, 1)
    target_item = rig.target.client("dynamodb").get_item(
        TableName=m.config.target_table_name, Key=poison_key, ConsistentRead=True
    )["Item"]
    assert target_item == src.get_item(TableName=table, Key=poison_key, ConsistentRead=True)["Item"]


def test_records_older_than_the_maximum_record_age_go_to_the_destination_unprocessed(rig: Rig) -> None:
    table = f"esm-old-{rig.unique}"
    stream = rig.table(table)
    bucket = f"esm-old-{rig.unique}"
    rig.source.client("s3").create_bucket(Bucket=bucket)
    function = rig.function(f"old-{rig.unique}")
    uuid = rig.mapping(  # 1 s: below AWS's minimum of 60 s, which the emulator does not enforce
        stream,
        function,
        enabled=False,
        MaximumRecordAgeInSeconds=1,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}},
    )
    src = rig.source.client("dynamodb")
    for i in range(3):
        src.put_item(TableName=table, Item={"pk": {"S": f"p{i}"}, "sk": {"S": "s"}})
    written = time.time()
    wait_for(lambda: time.time() - written > 1.5, "the records to be older than 1 s")  # a condition, not a budget
    rig.lam.update_event_source_mapping(UUID=uuid, Enabled=True)

    s3 = rig.source.client("s3")
    listed = wait_for(lambda: s3.list_objects_v2(Bucket=bucket).get("Contents"), "an object in the destination")
    assert rig.emulator.wait_for_lambda(WAIT_S, [uuid])
    assert rig.calls() == []  # the function never saw them
    record = json.loads(s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read())
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["DDBStreamBatchInfo"]["batchSize"] == 3
    assert "functionError" not in record["responseContext"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in payload_records(record) or []] == ["p0", "p1", "p2"]
    stats = rig.stats(uuid)
    assert stats is not None
    assert (stats.invocations, stats.failed_records, stats.destination_objects) == (0, 3, 1)
