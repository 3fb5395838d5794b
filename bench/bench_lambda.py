"""Benchmark: the deployed path (the Lambda, run by the emulator from its zip) beside `replicate --local`.

Both replay the same stream, in one run, into two fresh target tables of the target account of one
embedded emulator (migrator/dev/emulator.py):

  (a) ``local``: the local stream driver (``migrator.dataplane.stream.replicate_local``, the code of
      ``migrator replicate --local``) in a separate process, as an operator runs it, from
      TRIM_HORIZON until caught up. Its rate is the records it applied over the time it ran (measured
      inside that process, so interpreter start-up is not charged to it).
  (b) ``lambda``: the replicator zip (``migrator.infra.package.build_zip_bytes``) deployed as a function
      with an event source mapping of the module's settings (batch size and batching window of
      ``migrator.config``'s defaults, ReportBatchItemFailures, bisect, an S3 failure destination); the
      emulator polls the stream and invokes the handler in its own warm interpreter. Its rate is the
      records the function processed from the start of its first invocation to the end of its last.

``lambda_vs_local`` is (b)'s rate over (a)'s; the deployed path is meant to keep at least 70% of the
local runner's rate. Workload: ``--records`` changes (puts, updates and deletes over a few thousand
keys, items of a few hundred bytes) written to the source table before either starts, so both read a
full stream. At the end both targets are compared with the source, item for item; the exit code is
non-zero when either differs. Prints ONE JSON line.

Run: ``.venv/bin/python bench/bench_lambda.py [--records N] [--seed S]`` (``make bench`` runs the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
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

from migrator.aws.codec import key_of
from migrator.aws.session import AccountSession
from migrator.config import ReplicatorConfig
from migrator.dev.emulator import start_emulator
from migrator.infra.package import build_zip_bytes

SOURCE, TARGET, REGION = "222222222222", "111111111111", "us-east-1"
KEYS = ("pk", "sk")

LOCAL_RUNNER = """
import json, sys, time
from pathlib import Path
import boto3
from migrator.dataplane.stream import replicate_local
endpoint, stream_arn, table, checkpoint, source_key, target_key = sys.argv[1:7]
def client(service, key):
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=key, RoleSessionName="bench")["Credentials"]
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])
streams, target = client("dynamodbstreams", source_key), client("dynamodb", target_key)
started = time.monotonic()
summary = replicate_local(
    streams, target, stream_arn, table, Path(checkpoint), until_caught_up=True, poll_interval=0.05
)
print(json.dumps({"records": summary.records_applied, "seconds": time.monotonic() - started}))
"""


def _item(rng: random.Random, n: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"k{n % 997}"},
        "sk": {"S": f"item#{n:05d}"},
        "version": {"N": str(version)},
        "precise": {"N": "1234567890123456789012345678901234567" + str(rng.randint(0, 9))},
        "note": {"S": f'名前 {rng.random():.6f} "q" \\ \n'},
        "blob": {"B": rng.randbytes(rng.randint(8, 64))},
        "tags": {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})},
        "nested": {"M": {"l": {"L": [{"N": str(rng.randint(0, 99))}, {"BOOL": True}]}}},
    }


def write_changes(ddb: Any, table: str, count: int, seed: int) -> None:
    """``count`` changes, one stream record each: puts (new keys and overwrites) and deletes of live keys."""
    rng = random.Random(seed)
    live: list[int] = []
    for version in range(count):
        if live and rng.random() < 0.15:
            n = live.pop(rng.randrange(len(live)))
            ddb.delete_item(TableName=table, Key={"pk": {"S": f"k{n % 997}"}, "sk": {"S": f"item#{n:05d}"}})
            continue
        n = rng.randrange(4000)
        if n not in live:
            live.append(n)
        ddb.put_item(TableName=table, Item=_item(rng, n, version))


def create_table(ddb: Any, name: str, stream: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(**kwargs)
    return dict(ddb.describe_table(TableName=name)["Table"])


def scan(ddb: Any, table: str) -> dict[bytes, dict[str, Any]]:
    items: dict[bytes, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            items[key_of(item, KEYS)] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def deploy(source: AccountSession, stream_arn: str, table: str, endpoint: str) -> str:
    """The replicator as phase 2 and phase 4 deploy it, with boto3 (the module's settings); its mapping UUID."""
    iam, lam, s3 = source.client("iam"), source.client("lambda"), source.client("s3")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
        ],
    }
    role = iam.create_role(RoleName="bench-replicator", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    s3.create_bucket(Bucket="bench-failures")
    defaults = ReplicatorConfig()
    lam.create_function(
        FunctionName="bench-replicator",
        Runtime="python3.12",
        Role=role,
        Handler="replicator.handler.handler",
        Code={"ZipFile": build_zip_bytes()},
        Timeout=defaults.timeout,
        MemorySize=defaults.memory_size,
        Environment={
            "Variables": {
                "TARGET_TABLE": table,
                "TARGET_REGION": REGION,
                "WRITER_ROLE_ARN": f"arn:aws:iam::{TARGET}:role/bench-writer",
                "EXTERNAL_ID": "bench",
                "TARGET_ENDPOINT_URL": endpoint,
            }
        },
    )
    mapping = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName="bench-replicator",
        Enabled=False,
        StartingPosition="TRIM_HORIZON",
        BatchSize=defaults.batch_size,
        MaximumBatchingWindowInSeconds=defaults.maximum_batching_window_in_seconds,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=defaults.maximum_retry_attempts,
        MaximumRecordAgeInSeconds=-1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": "arn:aws:s3:::bench-failures"}},
    )
    return str(mapping["UUID"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    emulator = start_emulator()
    os.environ.update(emulator.client_environment())  # AWS_CA_BUNDLE, for this process and the local runner
    try:
        endpoint = emulator.endpoint
        source = AccountSession(SOURCE, REGION, f"arn:aws:iam::{SOURCE}:role/Ops", endpoint_url=endpoint)
        target = AccountSession(TARGET, REGION, f"arn:aws:iam::{TARGET}:role/Ops", endpoint_url=endpoint)
        src, tgt = source.client("dynamodb"), target.client("dynamodb")
        stream_arn = str(create_table(src, "BenchSource", stream=True)["LatestStreamArn"])
        create_table(tgt, "BenchLocal", stream=False)
        create_table(tgt, "BenchLambda", stream=False)
        write_changes(src, "BenchSource", args.records, args.seed)
        uuid = deploy(source, stream_arn, "BenchLambda", endpoint)

        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    LOCAL_RUNNER,
                    endpoint,
                    stream_arn,
                    "BenchLocal",
                    str(Path(tmp) / "checkpoints.json"),
                    f"arn:aws:iam::{SOURCE}:role/Ops",
                    f"arn:aws:iam::{TARGET}:role/Ops",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            print(json.dumps({"error": "the local runner failed", "stderr": proc.stderr[-2000:]}))
            return 1
        local = json.loads(proc.stdout.strip().splitlines()[-1])

        source.client("lambda").update_event_source_mapping(UUID=uuid, Enabled=True)
        if not emulator.wait_for_lambda(1800, [uuid]):
            print(
                json.dumps({"error": "the function did not catch up", "stats": emulator.lambda_stats()[uuid].to_json()})
            )
            return 1
        stats = emulator.lambda_stats()[uuid]

        truth = scan(src, "BenchSource")
        equal = {"local": scan(tgt, "BenchLocal") == truth, "lambda": scan(tgt, "BenchLambda") == truth}
        local_rps = local["records"] / local["seconds"]
        lambda_rps = stats.records_per_s or 0.0
        print(
            json.dumps(
                {
                    "records": args.records,
                    "stream_records_local": local["records"],
                    "stream_records_lambda": stats.records,
                    "local_records_per_s": round(local_rps, 1),
                    "lambda_records_per_s": round(lambda_rps, 1),
                    "lambda_vs_local": round(lambda_rps / local_rps, 3) if local_rps else None,
                    "lambda_batches": stats.batches,
                    "lambda_invocations": stats.invocations,
                    "lambda_cold_starts": stats.cold_starts,
                    "lambda_errors": stats.errors,
                    "targets_equal_source": equal,
                }
            )
        )
        return 0 if all(equal.values()) and stats.errors == 0 else 1
    finally:
        emulator.stop()


if __name__ == "__main__":
    raise SystemExit(main())
