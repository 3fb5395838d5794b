"""The emulator imports what it exports, and scans any partition key in segments.

Both are adjustments of moto in :mod:`migrator.dev.emulator`: ImportTable decodes every line of an
export's DynamoDB-JSON files with the standard json module (moto's parser left escapes undecoded and
binary values as base64 text), and a segmented Scan hashes a binary partition key's bytes (moto
failed with ``'bytes' object has no attribute 'encode'``).
"""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from migrator.aws.session import AccountSession
from migrator.dev.emulator import request_form

from .conftest import TARGET_ACCOUNT

TRICKY = [
    "名前",
    'say "hi"',
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "bell\x07 nul\x00 esc\x1b del\x7f",
    "\u2028 separators \u2029 and é, 🎉",
    "\\u540d not an escape",
    "",
]


def _items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, text in enumerate(TRICKY):
        items.append(
            {
                "pk": {"S": text if text else "empty-value"},
                "sk": {"S": f"{n:02d}{text}"},
                "text": {"S": text},
                "nested": {"M": {text or "k": {"L": [{"S": text}, {"B": text.encode("utf-8") + b"\x00\xff"}]}}},
                "ss": {"SS": sorted({text or "x", f"{text}!"})},
                "ns": {"NS": ["1", "-2.5", "12345678901234567890123456789012345678"]},
                "bs": {"BS": [b"\x00", b"\xff\xfe", text.encode("utf-8") + b"\x01"]},
                "blob": {"B": bytes(range(256))},
                "flag": {"BOOL": n % 2 == 0},
                "none": {"NULL": True},
            }
        )
    return items


def _canonical(item: dict[str, Any]) -> dict[str, Any]:
    """Raw attribute values, sets in a stable order (DynamoDB keeps no set order)."""

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


def _scan(ddb: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            out[(item["pk"]["S"], item["sk"]["S"])] = _canonical(item)
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _wait(describe: Any, field: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        desc: dict[str, Any] = describe()
        if desc[field] != "IN_PROGRESS":
            return desc
        assert time.monotonic() < deadline, f"still IN_PROGRESS: {desc}"
        time.sleep(0.05)


def test_an_export_imports_equal_item_for_item(source: AccountSession, target: AccountSession, unique: str) -> None:
    src, tgt, s3 = source.client("dynamodb"), target.client("dynamodb"), target.client("s3")
    table, bucket, copy = f"imp-{unique}", f"imp-export-{unique}", f"imp-copy-{unique}"
    schema = {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    src.create_table(TableName=table, **schema)
    src.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    items = _items()
    for item in items:
        src.put_item(TableName=table, Item=item)
    original = _scan(src, table)
    assert len(original) == len(items)
    s3.create_bucket(Bucket=bucket)

    arn = src.export_table_to_point_in_time(
        TableArn=src.describe_table(TableName=table)["Table"]["TableArn"],
        S3Bucket=bucket,
        S3BucketOwner=TARGET_ACCOUNT,
        S3Prefix="exports",
        ExportFormat="DYNAMODB_JSON",
    )["ExportDescription"]["ExportArn"]
    exported = _wait(lambda: src.describe_export(ExportArn=arn)["ExportDescription"], "ExportStatus")
    assert exported["ExportStatus"] == "COMPLETED", exported
    data = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if "/data/" in o["Key"]]
    assert len(data) == 1
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=data[0])["Body"].read()).decode("utf-8")
    assert "\\u540d\\u524d" in body  # the export escapes: what the import must decode

    imp = tgt.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": data[0].rsplit("/", 1)[0] + "/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": copy, **schema},
    )["ImportTableDescription"]["ImportArn"]
    imported = _wait(lambda: tgt.describe_import(ImportArn=imp)["ImportTableDescription"], "ImportStatus")

    assert imported["ImportStatus"] == "COMPLETED", imported
    assert (imported["ProcessedItemCount"], imported["ImportedItemCount"], imported["ErrorCount"]) == (
        len(items),
        len(items),
        0,
    )
    assert imported["ProcessedSizeBytes"] == len(body.strip().encode("utf-8")) - (len(items) - 1)  # lines, no \n
    assert _scan(tgt, copy) == original
    for item in items:  # a key written again lands on the imported item (binary values are bytes, not base64)
        tgt.put_item(TableName=copy, Item=item)
    assert _scan(tgt, copy) == original


def test_an_import_counts_a_bad_line_as_an_error_and_keeps_the_rest(target: AccountSession, unique: str) -> None:
    tgt, s3 = target.client("dynamodb"), target.client("s3")
    bucket = f"imp-bad-{unique}"
    s3.create_bucket(Bucket=bucket)
    good = {"Item": {"pk": {"S": 'q"uote\\ \u540d'}, "b": {"B": "AP8="}}}
    lines = [json.dumps(good), "{not json", json.dumps({"Item": {"pk": {"S": "two"}}})]
    s3.put_object(Bucket=bucket, Key="data/part.json.gz", Body=gzip.compress("\n".join(lines).encode()))
    imp = tgt.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "data/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={
            "TableName": f"imp-bad-{unique}",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )["ImportTableDescription"]["ImportArn"]
    done = _wait(lambda: tgt.describe_import(ImportArn=imp)["ImportTableDescription"], "ImportStatus")

    assert done["ImportStatus"] == "FAILED"
    assert (done["ProcessedItemCount"], done["ImportedItemCount"], done["ErrorCount"]) == (3, 2, 1)
    assert done["FailureMessage"]
    got = tgt.get_item(TableName=f"imp-bad-{unique}", Key={"pk": {"S": 'q"uote\\ 名'}}, ConsistentRead=True)["Item"]
    assert got == {"pk": {"S": 'q"uote\\ 名'}, "b": {"B": b"\x00\xff"}}


def test_request_form_decodes_binary_at_any_depth_and_refuses_what_is_no_attribute_value() -> None:
    value = {"M": {"a": {"L": [{"B": "AAE="}, {"BS": ["/w=="]}, {"S": "AAE="}]}}}
    assert request_form(value) == {"M": {"a": {"L": [{"B": b"\x00\x01"}, {"BS": [b"\xff"]}, {"S": "AAE="}]}}}
    with pytest.raises(ValueError, match="not an AttributeValue"):
        request_form({"S": "a", "N": "1"})


@pytest.mark.parametrize("total", [1, 2, 3, 7])
def test_a_parallel_scan_of_a_binary_partition_key_returns_every_item_once(
    source: AccountSession, unique: str, total: int
) -> None:
    ddb = source.client("dynamodb")
    table = f"seg-{unique}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "B"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    keys = {(bytes([i, 255 - i, i % 7]) + b"\x00", n) for i in range(60) for n in range(2)}
    for raw, n in keys:
        ddb.put_item(TableName=table, Item={"id": {"B": raw}, "n": {"N": str(n)}, "pad": {"S": "x" * 50}})

    def segment(number: int) -> list[tuple[bytes, int]]:
        found: list[tuple[bytes, int]] = []
        kwargs: dict[str, Any] = {"TableName": table, "Segment": number, "TotalSegments": total, "Limit": 7}
        while True:
            page = ddb.scan(**kwargs)
            found.extend((i["id"]["B"], int(i["n"]["N"])) for i in page["Items"])
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(max_workers=total) as pool:
        segments = list(pool.map(segment, range(total)))

    every = [k for s in segments for k in s]
    assert sorted(every) == sorted(keys)  # each item exactly once across the segments
    if total > 1:
        assert sum(1 for s in segments if s) > 1  # the items really are spread over segments
    for s in segments:  # one partition key never straddles two segments
        ids = {raw for raw, _ in s}
        assert all(ids.isdisjoint({raw for raw, _ in other}) for other in segments if other is not s)


def test_a_table_with_a_binary_partition_key_exports_imports_and_verifies(
    source: AccountSession, target: AccountSession, unique: str
) -> None:
    from migrator.dataplane.verify import verify_tables

    src, tgt, s3 = source.client("dynamodb"), target.client("dynamodb"), target.client("s3")
    table, bucket = f"bin-{unique}", f"bin-export-{unique}"
    schema = {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "B"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    src.create_table(TableName=table, **schema)
    src.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for n in range(40):
        src.put_item(TableName=table, Item={"id": {"B": bytes([n, 0, 255 - n])}, "v": {"S": TRICKY[n % len(TRICKY)]}})
    s3.create_bucket(Bucket=bucket)
    arn = src.export_table_to_point_in_time(
        TableArn=src.describe_table(TableName=table)["Table"]["TableArn"],
        S3Bucket=bucket,
        S3BucketOwner=TARGET_ACCOUNT,
        S3Prefix="exports",
        ExportFormat="DYNAMODB_JSON",
    )["ExportDescription"]["ExportArn"]
    assert _wait(lambda: src.describe_export(ExportArn=arn)["ExportDescription"], "ExportStatus")["ExportStatus"] == (
        "COMPLETED"
    )
    (data,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if "/data/" in o["Key"]]
    imp = tgt.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": data.rsplit("/", 1)[0] + "/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": table, **schema},
    )["ImportTableDescription"]["ImportArn"]
    done = _wait(lambda: tgt.describe_import(ImportArn=imp)["ImportTableDescription"], "ImportStatus")
    assert (done["ImportStatus"], done["ImportedItemCount"]) == ("COMPLETED", 40)
    listed = tgt.list_imports(TableArn=tgt.describe_table(TableName=table)["Table"]["TableArn"])["ImportSummaryList"]
    assert [i["ImportArn"] for i in listed] == [imp]  # ListImports finds the import of the table
    result = verify_tables(src, table, tgt, table, key_names=["id"], segments=4, workers=4, recheck_delay=0.01)
    assert result.clean and (result.source_items, result.target_items) == (40, 40), result.to_json()
