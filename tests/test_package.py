"""The Lambda zip: the replicator package alone, importing nothing of migrator outside it."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from migrator.aws.session import AccountSession
from migrator.infra.package import build_zip_bytes

from .conftest import REGION, SOURCE_ACCOUNT, TARGET_ACCOUNT

# Run in a separate interpreter, as Lambda would: the zip first on the path, and any import of
# `migrator` refused, so a module the zip lacks (or an import reaching into migrator) fails loudly.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])

class RefuseMigrator:
    def find_spec(self, name, path=None, target=None):
        if name == "migrator" or name.startswith("migrator."):
            raise ImportError("the Lambda zip imported " + name)
        return None

sys.meta_path.insert(0, RefuseMigrator())
import replicator.handler
mods = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] == "replicator"}
print(json.dumps({"modules": mods, "migrator": [n for n in sys.modules if n.split(".")[0] == "migrator"]}))
"""


def test_the_zip_holds_exactly_the_modules_the_handler_imports_and_nothing_of_migrator(tmp_path: Path) -> None:
    data = build_zip_bytes()
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(tmp_path)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["migrator"] == []
    imported = sorted(Path(f).relative_to(tmp_path).as_posix() for f in found["modules"].values())
    assert imported == names  # every file of the zip is imported, and everything imported is in the zip


# The built zip, run as Lambda would (another interpreter, only the zip and boto3), on events shaped as
# Lambda delivers them: binary values base64 text, ApproximateCreationDateTime in epoch seconds.
RUN_HANDLER = """
import json, sys
sys.path.insert(0, sys.argv[1])

class RefuseMigrator:
    def find_spec(self, name, path=None, target=None):
        if name == "migrator" or name.startswith("migrator."):
            raise ImportError("the Lambda zip imported " + name)
        return None

sys.meta_path.insert(0, RefuseMigrator())
from replicator.handler import handler

class Context:
    def get_remaining_time_in_millis(self):
        return 60_000

print(json.dumps(handler(json.load(sys.stdin), Context())))
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _record(
    event: str, seq: int, keys: dict[str, Any], new: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_764_000_000.0 + seq,
        "Keys": keys,
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = new
    return {
        "eventID": f"e{seq}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": body,
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{SOURCE_ACCOUNT}:table/T/stream/2026-01-01T00:00:00.000",
        **extra,
    }


def test_the_built_zip_applies_lambda_shaped_events_to_the_target_byte_for_byte(
    tmp_path: Path, moto_endpoint: str, target: AccountSession, unique: str
) -> None:
    table = f"zip-{unique}"
    ddb = target.client("dynamodb")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "B"},
            {"AttributeName": "at", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    raw_id = b"\x00\xffkey\x80"
    key = {"id": {"B": _b64(raw_id)}, "at": {"N": "12345678901234567890123456789012345678"}}
    image = {
        **key,
        "name": {"S": '名前 "quoted" back\\slash\nnew line'},
        "blob": {"B": _b64(bytes(range(256)))},
        "blobs": {"BS": [_b64(b"\x01\x02"), _b64(b"\xfe")]},
        "precise": {"N": "-0.00000000000000000000000000000000000012"},
        "nested": {"M": {"list": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}]}}},
    }
    changed = {**image, "name": {"S": "changed"}}
    ttl_key = {"id": {"B": _b64(b"ttl")}, "at": {"N": "1"}}
    gone_key = {"id": {"B": _b64(b"gone")}, "at": {"N": "2"}}
    for k in (ttl_key, gone_key):
        ddb.put_item(TableName=table, Item={"id": {"B": base64.b64decode(k["id"]["B"])}, "at": k["at"]})
    event = {
        "Records": [
            _record("INSERT", 1, key, image),
            _record("MODIFY", 2, key, changed),
            _record("REMOVE", 3, gone_key),
            _record("REMOVE", 4, ttl_key, userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
        ]
    }
    zipfile.ZipFile(io.BytesIO(build_zip_bytes())).extractall(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"},
        "AWS_ACCESS_KEY_ID": "function-key",
        "AWS_SECRET_ACCESS_KEY": "function-secret",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "TARGET_TABLE": table,
        "TARGET_REGION": REGION,
        "WRITER_ROLE_ARN": f"arn:aws:iam::{TARGET_ACCOUNT}:role/zip-writer",
        "EXTERNAL_ID": "ext-zip",
        "TARGET_ENDPOINT_URL": moto_endpoint,
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RUN_HANDLER, str(tmp_path)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert len(items) == 1  # the deletes (one by TTL) landed; the insert then its modify is one item
    (got,) = items
    expected = {name: {"B": base64.b64decode(v["B"])} if "B" in v else v for name, v in changed.items()}
    # a set has no order: its members, as bytes
    assert sorted(got.pop("blobs")["BS"]) == sorted(base64.b64decode(b) for b in expected.pop("blobs")["BS"])
    assert got == expected
