"""Benchmark: the replicator core against the naive one-write-per-record handler.

Workload (unchanged, not tuned): one mixed stream of ``--records`` (default 20,000) records generated
in memory in stream-record shape — 10% deletes, 30% of the changes on 50 hot keys updated over and
over, the rest over 5,000 keys; items of a few hundred bytes with numbers (38 digits), strings,
binary, a string set and a nested map/list.

Server: ONE moto server, started by the bench as a separate process (``python -m moto.server`` on a
free loopback port) and stopped at the end. Every variant reaches it over HTTP through its own
botocore client, like a Lambda reaching a remote DynamoDB; client and server do not share a GIL (the
former in-process ``ThreadedMotoServer`` made the core's worker threads and the server take turns on
one GIL).

Where the time goes (cProfile and per-process CPU, 2-core machine): moto spends ~1.3 ms of CPU per
API call (a new connection and thread per request — werkzeug closes every connection —, dispatch,
response serialisation) plus ~0.1–0.15 ms per item written; the naive loops add ~0.7 ms of client CPU
per call (botocore, HTTP). The core spends ~0.07–0.09 ms of client CPU per record (planning ~0.01,
botocore's serialisation ~0.025, the rest HTTP) and is bound by moto's CPU per item: about two thirds
of its time is the server's. Real DynamoDB charges a network round trip per call instead of server
CPU per item, so against a remote table the gap is wider than here. ``--rtt-ms`` adds a simulated
round trip (a sleep before each HTTP request) to every variant alike; the default, and the headline
numbers, use none.

Variants, each into its own fresh target table on that server, all in one run:

  (a) ``naive``: the original recipe's Lambda handler, the usual AWS pattern — per record, deserialise
      the image with ``boto3.dynamodb.types.TypeDeserializer`` and call ``Table.put_item`` /
      ``Table.delete_item`` of the boto3 resource (which serialises it back), in order, one call per
      record. ``replicator_speedup`` is measured against this one.
  (a') ``naive_lowlevel``: the same one-call-per-record loop with the low-level client and the raw
      image, no (de)serialisation charged to it — a stronger baseline than the recipe;
      ``replicator_speedup_vs_lowlevel`` is measured against it.
  (b) ``core``: the replicator core, in batches of ``migrator.config``'s default ``batch_size`` like
      the Lambda's event source mapping delivers them, with the client configuration the Lambda
      handler builds (``replicator.handler.client_config``).
  (b') ``core_b<N>``: the core at each other batch size of ``--batch-sizes``, for the batch-size choice.

Drift: other work on the machine changes the speed over a run, so the stream is applied in
``--rounds`` consecutive segments and every variant applies each segment in turn (order rotated per
round); each variant's table sees the whole stream in order, batches are never cut by a segment
boundary, and every variant sees the same mix of quiet and busy moments. Ratios are from one run.

API calls are counted with a botocore ``before-call`` hook on each client. At the end every target
is scanned and compared with the final state the stream describes: the core's and the low-level
loop's exactly (raw ``AttributeValue`` maps, byte for byte); the recipe's with set members compared
as sets, because the recipe's round trip through Python ``set`` reorders them (DynamoDB sets have
no order). The exit code is non-zero when any target differs. Prints ONE JSON line.

Run: ``.venv/bin/python bench/bench_replicator.py [--records N] [--seed S] [--rounds R]
[--batch-sizes 1000] [--rtt-ms 0]`` (``make bench`` runs the defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "AKIABENCHFAKE",
        "AWS_SECRET_ACCESS_KEY": "bench-fake-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)

import boto3
from boto3.dynamodb.types import TypeDeserializer

from migrator.aws.codec import key_of
from migrator.aws.session import client_config
from migrator.config import ReplicatorConfig
from migrator.replicator.core import apply_records
from migrator.replicator.handler import client_config as replicator_client_config

DEFAULT_BATCH_SIZE: int = ReplicatorConfig().batch_size  # what the event source mapping delivers
MAX_WORKERS = 8  # the core's (and the Lambda's) default
HOT_KEYS = 50
COLD_KEYS = 5_000
HOT_SHARE = 0.30
DELETE_SHARE = 0.10


# --------------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------------


def _keys(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "item"}}


def _image(rng: random.Random, pk: str, version: int) -> dict[str, Any]:
    return {
        **_keys(pk),
        "version": {"N": str(version)},
        "amount": {"N": str(rng.randrange(10**37, 10**38))},
        "name": {"S": f"customer-{rng.randrange(10**6)}-" + "x" * rng.randint(20, 200)},
        "blob": {"B": rng.randbytes(rng.randint(8, 64))},
        "tags": {"SS": sorted({f"t{rng.randint(0, 20)}" for _ in range(3)})},
        "doc": {"M": {"n": {"N": str(rng.randint(0, 999))}, "l": {"L": [{"S": "a"}, {"BOOL": True}]}}},
    }


def generate(n: int, seed: int) -> tuple[list[dict[str, Any]], dict[bytes, dict[str, Any]]]:
    """The stream records and the final state of the source they describe."""
    rng = random.Random(seed)
    model: dict[bytes, dict[str, Any]] = {}
    live: list[str] = []
    records: list[dict[str, Any]] = []
    seq = 10**20
    created = time.time() - 60
    for version in range(1, n + 1):
        seq += rng.randint(1, 50)
        old: dict[str, Any] | None
        new: dict[str, Any] | None
        if live and rng.random() < DELETE_SHARE:
            index = rng.randrange(len(live))
            pk = live[index]
            live[index] = live[-1]
            live.pop()
            old = model.pop(key_of(_keys(pk), ("pk", "sk")))
            event, new = "REMOVE", None
        else:
            pk = f"hot{rng.randrange(HOT_KEYS)}" if rng.random() < HOT_SHARE else f"k{rng.randrange(COLD_KEYS)}"
            key = key_of(_keys(pk), ("pk", "sk"))
            old = model.get(key)
            new = _image(rng, pk, version)
            event = "MODIFY" if old is not None else "INSERT"
            if old is None:
                live.append(pk)
            model[key] = new
        body: dict[str, Any] = {
            "Keys": _keys(pk),
            "SequenceNumber": str(seq),
            "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": created + version / 1000,
        }
        if new is not None:
            body["NewImage"] = new
        if old is not None:
            body["OldImage"] = old
        records.append({"eventID": str(version), "eventName": event, "eventSource": "aws:dynamodb", "dynamodb": body})
    return records, model


# --------------------------------------------------------------------------------------------------
# The moto server, in its own process
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server_process(timeout_s: float = 60.0) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port; yields its endpoint, stops it on exit."""
    with tempfile.TemporaryFile() as log:
        for _ in range(3):  # the port may be taken between choosing and binding it: choose again
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + timeout_s
                while process.poll() is None and time.monotonic() < deadline:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    except OSError:
                        time.sleep(0.1)
                        continue
                    yield f"http://127.0.0.1:{port}"
                    return
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        log.seek(0)
        tail = log.read()[-2000:].decode(errors="replace")
        raise SystemExit(f"the moto server did not start:\n{tail}")


# --------------------------------------------------------------------------------------------------
# Targets and the variants
# --------------------------------------------------------------------------------------------------


def create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def add_round_trip(client: Any, rtt_ms: float) -> None:
    """Make every HTTP request of ``client`` wait ``rtt_ms`` first, as a remote endpoint would (GIL released)."""
    if rtt_ms > 0:
        client.meta.events.register("before-send.dynamodb.*", lambda **_: time.sleep(rtt_ms / 1000.0))


def count_calls(client: Any) -> dict[str, int]:
    counts: dict[str, int] = {}

    def count(event_name: str, **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        counts[op] = counts.get(op, 0) + 1

    client.meta.events.register("before-call.dynamodb.*", count)
    return counts


_deserializer = TypeDeserializer()


def recipe_handler(table: Any, event: dict[str, Any]) -> None:
    """The original recipe's Lambda handler: per record, deserialise and put / delete through the resource."""
    for record in event["Records"]:
        body = record["dynamodb"]
        if record["eventName"] == "REMOVE":
            table.delete_item(Key={k: _deserializer.deserialize(v) for k, v in body["Keys"].items()})
        else:
            table.put_item(Item={k: _deserializer.deserialize(v) for k, v in body["NewImage"].items()})


def lowlevel_handler(client: Any, table: str, records: list[dict[str, Any]]) -> None:
    """One low-level PutItem / DeleteItem per record, in order, raw images."""
    for record in records:
        body = record["dynamodb"]
        if record["eventName"] == "REMOVE":
            client.delete_item(TableName=table, Key=body["Keys"])
        else:
            client.put_item(TableName=table, Item=body["NewImage"])


@dataclass
class Variant:
    name: str
    table: str
    client: Any  # the client the variant writes through (call counts)
    batch_size: int
    apply: Callable[[list[dict[str, Any]]], None]  # one batch, as one Lambda invocation gets it
    exact: bool  # compare raw images exactly (else: set members as sets)
    seconds: float = 0.0
    writes: int = 0  # writes after coalescing (the core) or records (one per record)
    calls: dict[str, int] = field(default_factory=dict)
    scan_client: Any = None  # a plain low-level client for the verifying scan (default: ``client``)


def recipe_variant(endpoint: str, batch_size: int) -> Variant:
    name = "bench-naive-recipe"
    resource = boto3.resource("dynamodb", endpoint_url=endpoint, config=client_config())
    create_table(resource.meta.client, name)
    table = resource.Table(name)
    variant = Variant("naive", name, resource.meta.client, batch_size, lambda b: None, exact=False)
    # The resource's own client converts answers to Python values: scan through a plain one.
    variant.scan_client = boto3.client("dynamodb", endpoint_url=endpoint, config=client_config())

    def apply(batch: list[dict[str, Any]]) -> None:
        recipe_handler(table, {"Records": batch})
        variant.writes += len(batch)

    variant.apply = apply
    return variant


def lowlevel_variant(endpoint: str, batch_size: int) -> Variant:
    name = "bench-naive-lowlevel"
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=client_config())
    create_table(client, name)
    variant = Variant("naive_lowlevel", name, client, batch_size, lambda b: None, exact=True)

    def apply(batch: list[dict[str, Any]]) -> None:
        lowlevel_handler(client, name, batch)
        variant.writes += len(batch)

    variant.apply = apply
    return variant


def core_variant(endpoint: str, batch_size: int, label: str) -> Variant:
    name = f"bench-{label.replace('_', '-')}"
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=replicator_client_config(MAX_WORKERS))
    create_table(client, name)
    variant = Variant(label, name, client, batch_size, lambda b: None, exact=True)

    def apply(batch: list[dict[str, Any]]) -> None:
        result = apply_records(client, name, batch, max_workers=MAX_WORKERS)
        if not result.ok:
            raise SystemExit(f"{label} failed keys: {result.failed[:3]}")
        variant.writes += result.writes

    variant.apply = apply
    return variant


def scan(client: Any, table: str) -> dict[bytes, dict[str, Any]]:
    items: dict[bytes, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            items[key_of(item, ("pk", "sk"))] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def sets_unordered(value: Any) -> Any:
    """An AttributeValue (or item) with the members of SS / NS / BS sorted, since sets have no order."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag in ("SS", "NS", "BS"):
                return {tag: sorted(inner)}
        return {k: sets_unordered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sets_unordered(v) for v in value]
    return value


def run(variants: list[Variant], records: list[dict[str, Any]], rounds: int) -> None:
    """Every variant applies each segment of the stream in turn (see the module docstring)."""
    step = math.lcm(*(v.batch_size for v in variants))
    segment = max(step, math.ceil(len(records) / rounds / step) * step)
    for number, start in enumerate(range(0, len(records), segment)):
        part = records[start : start + segment]
        shift = number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            started = time.perf_counter()
            for offset in range(0, len(part), variant.batch_size):
                variant.apply(part[offset : offset + variant.batch_size])
            variant.seconds += time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5, help="segments the variants take turns on")
    parser.add_argument(
        "--batch-sizes",
        default="1000",
        help="comma-separated batch sizes the core also runs at, besides the default "
        f"({DEFAULT_BATCH_SIZE}); empty for none",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="simulated network round trip added to every HTTP request of every variant (default 0: none)",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    extra_sizes = sorted({int(s) for s in args.batch_sizes.split(",") if s.strip()} - {DEFAULT_BATCH_SIZE})

    records, expected = generate(args.records, args.seed)
    with moto_server_process() as endpoint:
        naive = recipe_variant(endpoint, DEFAULT_BATCH_SIZE)
        lowlevel = lowlevel_variant(endpoint, DEFAULT_BATCH_SIZE)
        core = core_variant(endpoint, DEFAULT_BATCH_SIZE, "core")
        others = [core_variant(endpoint, size, f"core_b{size}") for size in extra_sizes]
        variants = [naive, lowlevel, core, *others]
        for variant in variants:
            variant.calls = count_calls(variant.client)
            add_round_trip(variant.client, args.rtt_ms)
        run(variants, records, args.rounds)
        calls = {v.name: dict(v.calls) for v in variants}  # before the verifying scans
        equal: dict[str, bool] = {}
        for variant in variants:
            items = scan(variant.scan_client or variant.client, variant.table)
            equal[variant.name] = (
                items == expected if variant.exact else sets_unordered(items) == sets_unordered(expected)
            )

    n = len(records)

    def rate(v: Variant) -> float:
        return round(n / v.seconds, 1)

    def per_record(v: Variant) -> float:
        return round(sum(calls[v.name].values()) / n, 4)

    line: dict[str, Any] = {
        "records": n,
        "deletes": sum(1 for r in records if r["eventName"] == "REMOVE"),
        "final_items": len(expected),
        "server": "moto.server, separate process, HTTP over loopback",
        "rounds": args.rounds,
        "rtt_ms": args.rtt_ms,
        "batch_size": DEFAULT_BATCH_SIZE,
        "core_max_workers": MAX_WORKERS,
        "naive_records_per_s": rate(naive),
        "naive_lowlevel_records_per_s": rate(lowlevel),
        "core_records_per_s": rate(core),
        "replicator_speedup": round(naive.seconds / core.seconds, 2),
        "replicator_speedup_vs_lowlevel": round(lowlevel.seconds / core.seconds, 2),
        "naive_calls_per_record": per_record(naive),
        "naive_lowlevel_calls_per_record": per_record(lowlevel),
        "core_calls_per_record": per_record(core),
        "core_writes_after_coalescing": core.writes,
    }
    for variant in others:
        line[f"{variant.name}_records_per_s"] = rate(variant)
        line[f"{variant.name}_speedup"] = round(naive.seconds / variant.seconds, 2)
        line[f"{variant.name}_speedup_vs_lowlevel"] = round(lowlevel.seconds / variant.seconds, 2)
        line[f"{variant.name}_calls_per_record"] = per_record(variant)
        line[f"{variant.name}_writes_after_coalescing"] = variant.writes
    line["seconds"] = {v.name: round(v.seconds, 3) for v in variants}
    line["calls"] = calls
    line["target_equal"] = equal
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    return 0 if all(equal.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
