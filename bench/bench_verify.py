"""Benchmark: naive table comparison vs ``migrator.dataplane.verify.verify_tables`` on the local emulator.

One ThreadedMotoServer, two equal tables (one per account) of ``--items`` items. (a) naive: one Scan
of the source, one GetItem per item from the target, compare; (b) ``verify_tables`` with its
defaults. Prints one JSON line. Not a test: ``make bench`` runs it, or::

    .venv/bin/python bench/bench_verify.py --items 50000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

REGION = "us-east-1"
SOURCE_ACCOUNT = "222222222222"
TARGET_ACCOUNT = "111111111111"


def _fake_aws_environment() -> None:
    # Never reach a real account: drop whatever the shell carries, use fake credentials.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIAFAKEMIGRATORBENCH",
            "AWS_SECRET_ACCESS_KEY": "fake-secret-migrator-bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


def make_item(index: int) -> dict[str, Any]:
    """A modest, type-rich item (~200 bytes)."""
    return {
        "pk": {"S": f"customer#{index % 5000:05d}"},
        "sk": {"S": f"order#{index:08d}"},
        "amount": {"N": f"{index * 7 % 100000}.{index % 100:02d}"},
        "status": {"S": ("NEW", "PAID", "SHIPPED", "CLOSED")[index % 4]},
        "tags": {"SS": [f"t{index % 7}", f"t{index % 11}x", "all"]},
        "blob": {"B": index.to_bytes(8, "big")},
        "open": {"BOOL": index % 2 == 0},
        "address": {"M": {"city": {"S": f"city{index % 97}"}, "zip": {"N": str(10000 + index % 89999)}}},
        "lines": {"L": [{"N": str(index % 10)}, {"S": "sku-" + str(index % 1000)}]},
    }


def create_and_fill(client: Any, table: str, items: int, threads: int = 8) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    from migrator.aws.dynamodb import write_batch

    def fill(start: int) -> None:
        requests = [{"PutRequest": {"Item": make_item(i)}} for i in range(start, min(start + 25, items))]
        outcome = write_batch(client, table, requests, key_names=("pk", "sk"))
        if outcome.failed:
            raise RuntimeError(f"filling {table} failed: {outcome.failed[0]}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(0, items, 25)))


def naive(source: Any, target: Any, table: str) -> tuple[int, int, float, float]:
    """One Scan of the source, one GetItem per key from the target, compare.

    Returns (items seen, items differing, seconds in Scan calls, seconds in GetItem calls).
    """
    seen = differing = 0
    scan_s = get_s = 0.0
    request: dict[str, Any] = {"TableName": table}
    while True:
        started = time.perf_counter()
        page = source.scan(**request)
        scan_s += time.perf_counter() - started
        for item in page["Items"]:
            seen += 1
            key = {"pk": item["pk"], "sk": item["sk"]}
            started = time.perf_counter()
            other = target.get_item(TableName=table, Key=key).get("Item")
            get_s += time.perf_counter() - started
            if other != item:
                differing += 1
        if "LastEvaluatedKey" not in page:
            return seen, differing, scan_s, get_s
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=50_000, help="items per table (default 50000)")
    parser.add_argument("--skip-naive", action="store_true", help="only time verify_tables")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="what-if: add this network round trip to every DynamoDB request (default 0: the emulator as is)",
    )
    args = parser.parse_args(argv)

    _fake_aws_environment()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    from moto.server import ThreadedMotoServer

    from migrator.aws.session import AccountSession
    from migrator.dataplane.verify import verify_tables

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sessions = [
            AccountSession(account, REGION, role_arn=f"arn:aws:iam::{account}:role/Ops", endpoint_url=endpoint)
            for account in (SOURCE_ACCOUNT, TARGET_ACCOUNT)
        ]
        # The emulator serves every request under one GIL: 16 concurrent segment scans of a 50k-item table
        # each take longer than botocore's default 60 s read timeout (and the retries redo the work).
        source, target = (session.client("dynamodb", read_timeout=900) for session in sessions)
        if args.latency_ms:
            delay = args.latency_ms / 1000

            def round_trip(**_: Any) -> None:
                time.sleep(delay)

            for client in (source, target):
                client.meta.events.register("before-send.dynamodb", round_trip)
        table = "BenchOrders"
        started = time.perf_counter()
        for client in (source, target):
            create_and_fill(client, table, args.items)
        fill_s = time.perf_counter() - started
        print(f"filled 2 x {args.items} items in {fill_s:.1f}s", file=sys.stderr)

        naive_rate = None
        if not args.skip_naive:
            started = time.perf_counter()
            seen, differing, scan_s, get_s = naive(source, target, table)
            naive_s = time.perf_counter() - started
            if seen != args.items or differing:
                raise SystemExit(f"naive comparison is wrong: {seen} seen, {differing} differing")
            naive_rate = args.items / naive_s
            scan_ms, get_ms = 1000 * scan_s / args.items, 1000 * get_s / args.items
            print(
                f"naive: {naive_s:.1f}s (Scan {scan_s:.1f}s = {scan_ms:.2f} ms/item, "
                f"GetItem {get_s:.1f}s = {get_ms:.2f} ms/call); reading every item from both tables by Scan "
                f"caps the speedup here near {(scan_ms + get_ms) / (2 * scan_ms):.1f}x",
                file=sys.stderr,
            )

        started = time.perf_counter()
        result = verify_tables(source, table, target, table, key_names=["pk", "sk"])
        verify_s = time.perf_counter() - started
        if not result.clean or not result.source_items == result.target_items == args.items:
            raise SystemExit(f"verify_tables is wrong: {result.to_json()}")
        verify_rate = args.items / verify_s
        print(f"verify_tables: {verify_s:.1f}s", file=sys.stderr)
    finally:
        server.stop()

    line: dict[str, Any] = {
        "naive_items_per_s": round(naive_rate, 1) if naive_rate else None,
        "verify_items_per_s": round(verify_rate, 1),
        "verify_speedup": round(verify_rate / naive_rate, 2) if naive_rate else None,
        "items": args.items,
    }
    if args.latency_ms:
        line["simulated_latency_ms"] = args.latency_ms
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
