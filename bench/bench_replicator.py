"""Benchmark: the replicator core against the naive one-call-per-record handler.

One moto server; one mixed stream of 20,000 records generated in memory in stream-record shape
(10% deletes, 30% of the changes on 50 hot keys, the rest over 5,000 keys; items of a few hundred
bytes with numbers, strings, binary, sets and a nested map). The same records are applied

  (a) naively, as the original recipe's handler does: one PutItem / DeleteItem per record, in order
      (with the low-level client and the raw image — no deserialisation cost charged to it);
  (b) with the replicator core, in batches of 100 records like the Lambda's event source mapping;

each into its own fresh target table on the same server. API calls are counted with a botocore event
hook. Both targets are then scanned and compared with the expected final state; the exit code is
non-zero when either differs. Prints ONE JSON line.

Run: ``.venv/bin/python bench/bench_replicator.py [--records N] [--seed S]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from typing import Any

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "AKIABENCHFAKE",
        "AWS_SECRET_ACCESS_KEY": "bench-fake-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)

import boto3
from moto.server import ThreadedMotoServer

from migrator.aws import client_config
from migrator.replicator.core import apply_records, canonical_key

BATCH_SIZE = 100
MAX_WORKERS = 8  # the core's (and the Lambda's) default
HOT_KEYS = 50
COLD_KEYS = 5_000
HOT_SHARE = 0.30
DELETE_SHARE = 0.10


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


def generate(n: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stream records and the final state of the source they describe."""
    rng = random.Random(seed)
    model: dict[str, dict[str, Any]] = {}
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
            old = model.pop(canonical_key(_keys(pk)))
            event, new = "REMOVE", None
        else:
            pk = f"hot{rng.randrange(HOT_KEYS)}" if rng.random() < HOT_SHARE else f"k{rng.randrange(COLD_KEYS)}"
            key = canonical_key(_keys(pk))
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


def make_target(endpoint: str, name: str) -> tuple[Any, dict[str, int]]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=client_config())
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    counts: dict[str, int] = {}

    def count(event_name: str, **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        counts[op] = counts.get(op, 0) + 1

    client.meta.events.register("before-call.dynamodb.*", count)
    return client, counts


def naive_handler(client: Any, table: str, records: list[dict[str, Any]]) -> None:
    """The original recipe: one write per record, in order."""
    for record in records:
        body = record["dynamodb"]
        if record["eventName"] == "REMOVE":
            client.delete_item(TableName=table, Key=body["Keys"])
        else:
            client.put_item(TableName=table, Item=body["NewImage"])


def core_driver(client: Any, table: str, records: list[dict[str, Any]]) -> int:
    """Batches of 100 through the core, as the Lambda gets them; returns the writes after coalescing."""
    writes = 0
    for start in range(0, len(records), BATCH_SIZE):
        result = apply_records(client, table, records[start : start + BATCH_SIZE], max_workers=MAX_WORKERS)
        if not result.ok:
            raise SystemExit(f"core failed keys: {result.failed[:3]}")
        writes += result.writes
    return writes


def scan(client: Any, table: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            items[canonical_key({"pk": item["pk"], "sk": item["sk"]})] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    records, expected = generate(args.records, args.seed)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        naive_client, naive_calls = make_target(endpoint, "bench-naive")
        core_client, core_calls = make_target(endpoint, "bench-core")
        naive_calls.clear()
        core_calls.clear()

        started = time.perf_counter()
        naive_handler(naive_client, "bench-naive", records)
        naive_s = time.perf_counter() - started

        started = time.perf_counter()
        core_writes = core_driver(core_client, "bench-core", records)
        core_s = time.perf_counter() - started

        naive_calls, core_calls = dict(naive_calls), dict(core_calls)  # before the verifying scans
        naive_total, core_total = sum(naive_calls.values()), sum(core_calls.values())
        naive_ok = scan(naive_client, "bench-naive") == expected
        core_ok = scan(core_client, "bench-core") == expected
    finally:
        server.stop()

    n = len(records)
    line = {
        "records": n,
        "deletes": sum(1 for r in records if r["eventName"] == "REMOVE"),
        "final_items": len(expected),
        "batch_size": BATCH_SIZE,
        "core_max_workers": MAX_WORKERS,
        "core_writes_after_coalescing": core_writes,
        "naive_s": round(naive_s, 3),
        "core_s": round(core_s, 3),
        "naive_records_per_s": round(n / naive_s, 1),
        "core_records_per_s": round(n / core_s, 1),
        "replicator_speedup": round(naive_s / core_s, 2),
        "naive_calls_per_record": round(naive_total / n, 4),
        "core_calls_per_record": round(core_total / n, 4),
        "naive_calls": naive_calls,
        "core_calls": core_calls,
        "naive_target_equal": naive_ok,
        "core_target_equal": core_ok,
    }
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    return 0 if naive_ok and core_ok else 1


if __name__ == "__main__":
    sys.exit(main())
