"""The replicator core: event shapes, type fidelity, last change per key, retries, failure reporting.

``FakeDynamo`` is a faithful in-memory stand-in for the target's ``BatchWriteItem``: it refuses what
DynamoDB refuses (the same key twice in one call, more than 25 requests, a body over 16 MB, binary
values handed over as text, an item without its key) and can inject throttling, 5xx, partial
``UnprocessedItems`` and validation errors. Other replicator tests import it from here.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from migrator.aws.session import AccountSession
from migrator.replicator.batch import RetryPolicy
from migrator.replicator.core import (
    MAX_REQUEST_BYTES,
    ApplyResult,
    RecordError,
    apply_records,
    last_applied_sequence,
    oldest_record_age_s,
)

from .conftest import key_id, make_table, stream_record

NO_SLEEP = RetryPolicy(base_delay=0.0, max_delay=0.0, sleep=lambda _s: None)


def client_error(code: str, status: int = 400, op: str = "BatchWriteItem") -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, op)


def _check_value(value: Any, where: str) -> None:
    assert isinstance(value, dict), f"{where}: not an AttributeValue"
    assert len(value) == 1, f"{where}: not an AttributeValue"
    ((tag, inner),) = value.items()
    if tag == "B":
        assert isinstance(inner, bytes), f"{where}: binary handed over as {type(inner).__name__}"
    elif tag == "BS":
        assert all(isinstance(v, bytes) for v in inner), f"{where}: binary set not bytes"
    elif tag == "M":
        for k, v in inner.items():
            _check_value(v, f"{where}.{k}")
    elif tag == "L":
        for i, v in enumerate(inner):
            _check_value(v, f"{where}[{i}]")


Fault = Callable[[int, list[dict[str, Any]]], Any]


class FakeDynamo:
    """An in-memory low-level DynamoDB client with ``batch_write_item`` only.

    ``fault(call_number, requests)`` may return ``None`` (apply all), an exception to raise
    (nothing applied), or a list of request indexes to leave unprocessed (the others are applied).
    """

    def __init__(
        self,
        table: str = "T",
        key_names: tuple[str, ...] = ("pk", "sk"),
        fault: Fault | None = None,
        call_delay: float = 0.0,
    ) -> None:
        self.table = table
        self.key_names = key_names
        self.fault = fault
        self.call_delay = call_delay
        self.items: dict[bytes, dict[str, Any]] = {}
        self.calls: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def _key(self, request: dict[str, Any]) -> bytes:
        if "PutRequest" in request:
            item = request["PutRequest"]["Item"]
            for name in self.key_names:
                assert name in item, f"put without key attribute {name}"
            return key_id({n: item[n] for n in self.key_names})
        key = request["DeleteRequest"]["Key"]
        assert set(key) == set(self.key_names), f"delete key {sorted(key)} is not the table's key"
        return key_id(key)

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        assert list(RequestItems) == [self.table], f"unexpected tables {list(RequestItems)}"
        requests = RequestItems[self.table]
        assert 1 <= len(requests) <= 25, f"{len(requests)} requests in one BatchWriteItem"
        body = json.dumps(
            RequestItems, default=lambda b: base64.b64encode(b).decode() if isinstance(b, bytes) else str(b)
        )
        assert len(body) <= MAX_REQUEST_BYTES, "request body over 16 MB"
        keys = [self._key(r) for r in requests]
        assert len(keys) == len(set(keys)), "the same key twice in one BatchWriteItem"
        for r in requests:
            if "PutRequest" in r:
                for name, value in r["PutRequest"]["Item"].items():
                    _check_value(value, name)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            number = len(self.calls)
            self.calls.append(copy.deepcopy(requests))
        try:
            if self.call_delay:
                time.sleep(self.call_delay)
            outcome = self.fault(number, requests) if self.fault else None
            if isinstance(outcome, BaseException):
                raise outcome
            skip = set(outcome or [])
            with self.lock:
                for i, (key, request) in enumerate(zip(keys, requests, strict=True)):
                    if i in skip:
                        continue
                    if "PutRequest" in request:
                        self.items[key] = copy.deepcopy(request["PutRequest"]["Item"])
                    else:
                        self.items.pop(key, None)
            unprocessed = [copy.deepcopy(requests[i]) for i in sorted(skip)]
            return {"UnprocessedItems": {self.table: unprocessed} if unprocessed else {}}
        finally:
            with self.lock:
                self.in_flight -= 1

    def item(self, pk: str, sk: str = "1") -> dict[str, Any] | None:
        return self.items.get(key_id({"pk": {"S": pk}, "sk": {"S": sk}}))


def keys(pk: str, sk: str = "1") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def put(pk: str, seq: int, sk: str = "1", **attrs: Any) -> dict[str, Any]:
    image = {**keys(pk, sk), **attrs}
    return stream_record("MODIFY", keys(pk, sk), seq, new=image)


def delete(pk: str, seq: int, sk: str = "1") -> dict[str, Any]:
    return stream_record("REMOVE", keys(pk, sk), seq, old=keys(pk, sk))


# --------------------------------------------------------------------------------------------------
# Event shapes, against the emulator
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def target_table(target: AccountSession, unique: str) -> tuple[Any, str]:
    name = f"core-{unique}"
    make_table(target, name, stream=None, pitr=False)
    return target.client("dynamodb"), name


def _get(client: Any, table: str, pk: str, sk: str = "1") -> dict[str, Any] | None:
    item = client.get_item(TableName=table, Key=keys(pk, sk), ConsistentRead=True).get("Item")
    return None if item is None else dict(item)


def test_insert_event_writes_the_new_image(target_table: tuple[Any, str], insert_event: dict[str, Any]) -> None:
    client, table = target_table
    result = apply_records(client, table, [insert_event])
    assert result.ok
    assert result.puts == 1
    assert result.deletes == 0
    assert result.records_in == 1
    assert _get(client, table, "a") == insert_event["dynamodb"]["NewImage"]


def test_modify_event_replaces_the_item_with_the_new_image(
    target_table: tuple[Any, str], insert_event: dict[str, Any], modify_event: dict[str, Any]
) -> None:
    client, table = target_table
    client.put_item(TableName=table, Item={**keys("a"), "v": {"N": "1"}, "stale": {"S": "gone"}})
    result = apply_records(client, table, [modify_event])
    assert result.ok
    assert result.puts == 1
    assert _get(client, table, "a") == modify_event["dynamodb"]["NewImage"]  # 'stale' is gone too


def test_remove_event_deletes_by_keys(target_table: tuple[Any, str], remove_event: dict[str, Any]) -> None:
    client, table = target_table
    client.put_item(TableName=table, Item={**keys("a"), "v": {"N": "2"}})
    result = apply_records(client, table, [remove_event])
    assert result.ok
    assert result.deletes == 1
    assert result.puts == 0
    assert _get(client, table, "a") is None


def test_ttl_removal_by_the_service_deletes_the_item(target_table: tuple[Any, str]) -> None:
    client, table = target_table
    client.put_item(TableName=table, Item={**keys("t"), "expires": {"N": "1700000000"}})
    ttl = stream_record("REMOVE", keys("t"), 5, old={**keys("t"), "expires": {"N": "1700000000"}}, ttl=True)
    assert ttl["userIdentity"]["type"] == "Service"
    result = apply_records(client, table, [ttl])
    assert result.ok
    assert result.deletes == 1
    assert _get(client, table, "t") is None


def _fidelity_item(pk: str) -> dict[str, Any]:
    return {
        **keys(pk),
        "n38": {"N": "12345678901234567890123456789012345678"},
        "neg": {"N": "-0.00000000000000000000000000000000000001"},
        "big": {"N": "9.9999999999999999999999999999999999999E+125"},
        "bin": {"B": bytes(range(256))},
        "bs": {"BS": [b"\x00", b"\xff\xfe", b"plain"]},
        "ss": {"SS": ["a", "b", "ü"]},
        "ns": {"NS": ["1", "2.5", "-3", "12345678901234567890123456789012345678"]},
        "empty": {"S": ""},
        "emptybin": {"B": b""},
        "bool": {"BOOL": False},
        "null": {"NULL": True},
        "nested": {
            "M": {
                "list": {"L": [{"N": "1"}, {"S": ""}, {"M": {"deep": {"B": b"\x01\x02"}}}, {"L": []}]},
                "map": {"M": {}},
                "set": {"SS": ["x"]},
            }
        },
        "unicode": {"S": "日本語 ✓ \u0000 end"},
    }


def _sorted_sets(value: Any) -> Any:
    """Sets are unordered in DynamoDB: compare them as sorted lists, everything else as is."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("SS", "NS", "BS") and isinstance(v, list):
                out[k] = sorted(v)
            else:
                out[k] = _sorted_sets(v)
        return out
    if isinstance(value, list):
        return [_sorted_sets(v) for v in value]
    return value


def test_types_survive_byte_for_byte(target_table: tuple[Any, str]) -> None:
    client, table = target_table
    item = _fidelity_item("types")
    result = apply_records(client, table, [stream_record("INSERT", keys("types"), 1, new=item)])
    assert result.ok
    stored = _get(client, table, "types")
    assert _sorted_sets(stored) == _sorted_sets(item)
    assert stored is not None
    assert stored["n38"] == {"N": "12345678901234567890123456789012345678"}  # not a float
    assert stored["bin"] == {"B": bytes(range(256))}


def _as_lambda_json(value: Any) -> Any:
    """What a Lambda event carries: JSON, binary as base64 text."""
    return json.loads(json.dumps(value, default=lambda b: base64.b64encode(b).decode()))


def test_binary_from_a_lambda_event_is_written_as_the_original_bytes(target_table: tuple[Any, str]) -> None:
    client, table = target_table
    item = _fidelity_item("lambda")
    record = _as_lambda_json(stream_record("INSERT", keys("lambda"), 1, new=item))
    assert isinstance(record["dynamodb"]["NewImage"]["bin"]["B"], str)
    assert apply_records(client, table, [record]).ok
    stored = _get(client, table, "lambda")
    assert _sorted_sets(stored) == _sorted_sets(item)  # base64 decoded once, not encoded twice


def test_binary_keys_from_a_lambda_event_delete_the_right_item(target: AccountSession, unique: str) -> None:
    client = target.client("dynamodb")
    table = f"binkey-{unique}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "B"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"id": {"B": b"\x00\x01key\xff"}}
    client.put_item(TableName=table, Item={**key, "v": {"S": "x"}})
    record = _as_lambda_json(stream_record("REMOVE", key, 9, old={**key, "v": {"S": "x"}}))
    assert apply_records(client, table, [record]).ok
    assert "Item" not in client.get_item(TableName=table, Key=key, ConsistentRead=True)


def test_an_item_of_about_400_kb_survives(target_table: tuple[Any, str]) -> None:
    client, table = target_table
    blob = bytes(i % 251 for i in range(200_000))
    item = {**keys("big"), "text": {"S": "x" * 190_000 + "é"}, "blob": {"B": blob}}
    assert apply_records(client, table, [stream_record("INSERT", keys("big"), 1, new=item)]).ok
    assert _get(client, table, "big") == item


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["INSERT", "MODIFY"])
def test_a_record_without_new_image_is_reported_at_its_sequence_and_only_the_records_before_it_are_written(
    event: str,
) -> None:
    fake = FakeDynamo()
    keys_only = stream_record(event, keys("k"), 7)
    keys_only["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    result = apply_records(fake, "T", [put("ok", 6), keys_only, put("after", 8)])
    assert result.lowest_failed_sequence == f"{7:021d}"
    assert [(f.code, f.retryable) for f in result.failed] == [("RecordError", False)]
    assert "no NewImage" in result.failed[0].message and "KEYS_ONLY" in result.failed[0].message
    assert result.refused == 2
    assert fake.item("ok") is not None and fake.item("after") is None
    assert last_applied_sequence([put("ok", 6), keys_only, put("after", 8)], result) == f"{6:021d}"


def test_an_unknown_event_name_is_reported_at_its_sequence() -> None:
    record = put("a", 1)
    record["eventName"] = "UPSERT"
    result = apply_records(FakeDynamo(), "T", [record])
    assert result.lowest_failed_sequence == f"{1:021d}"
    assert "unknown eventName" in result.failed[0].message


def test_a_record_without_sequence_number_is_refused() -> None:
    record = put("a", 1)
    del record["dynamodb"]["SequenceNumber"]
    with pytest.raises(RecordError, match="SequenceNumber"):
        apply_records(FakeDynamo(), "T", [record])


# --------------------------------------------------------------------------------------------------
# Last change per key, batching, concurrency
# --------------------------------------------------------------------------------------------------


def test_replay_keeps_last_change_per_key() -> None:
    fake = FakeDynamo()
    records = [
        put("k", 1, v={"N": "1"}),
        put("j", 2, v={"N": "1"}),
        put("k", 3, v={"N": "2"}),
        delete("j", 4),
        delete("k", 5),
        put("k", 6, v={"N": "3"}),
        put("x", 7, v={"N": "1"}),
        delete("x", 8),
    ]
    result = apply_records(fake, "T", records)
    assert result.ok
    assert result.records_in == 8
    assert result.writes == 3
    assert (result.puts, result.deletes) == (1, 2)
    assert fake.item("k") == {**keys("k"), "v": {"N": "3"}}
    assert fake.item("j") is None
    assert fake.item("x") is None
    assert len(fake.calls) == 1
    assert len(fake.calls[0]) == 3


def test_replay_keeps_last_change_per_key_in_the_emulator(target_table: tuple[Any, str]) -> None:
    client, table = target_table
    records = [put("k", 1, v={"N": "1"}), delete("k", 2), put("k", 3, v={"N": "3"}), put("d", 4), delete("d", 5)]
    client.put_item(TableName=table, Item=keys("d"))
    assert apply_records(client, table, records).ok
    assert _get(client, table, "k") == {**keys("k"), "v": {"N": "3"}}
    assert _get(client, table, "d") is None


def test_no_batch_write_holds_the_same_key_twice() -> None:
    fake = FakeDynamo()
    records = [put(f"k{i % 37}", i, v={"N": str(i)}) for i in range(1, 500)]
    result = apply_records(fake, "T", records)  # FakeDynamo asserts uniqueness and ≤ 25 per call
    assert result.ok
    assert result.writes == 37
    assert [len(c) for c in fake.calls] == [25, 12]
    assert fake.item("k0") == {**keys("k0"), "v": {"N": str(37 * 13)}}


def test_writes_run_concurrently_across_distinct_keys() -> None:
    # Each call waits until four are in flight at once: run one at a time, the barrier would break.
    barrier = threading.Barrier(4, timeout=60)
    fake = FakeDynamo(fault=lambda n, requests: (barrier.wait(), None)[1])
    records = [put(f"k{i}", i) for i in range(1, 201)]  # 8 calls of 25
    result = apply_records(fake, "T", records, max_workers=8)
    assert result.ok
    assert len(fake.calls) == 8
    assert fake.max_in_flight >= 4


def test_large_requests_are_split_under_the_16_mb_limit() -> None:
    fake = FakeDynamo()
    # The fake does not cap the item size; 25 of these make a body over 16 MB.
    records = [put(f"big{i}", i, blob={"S": "y" * 700_000}) for i in range(1, 26)]
    result = apply_records(fake, "T", records)
    assert result.ok
    assert result.puts == 25
    assert len(fake.calls) == 2  # the fake asserts each body ≤ 16 MB


# --------------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------------


def test_unprocessed_items_are_retried_until_written() -> None:
    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        return list(range(0, len(requests), 2)) if n < 3 else None  # every other request, 3 times

    sleeps: list[float] = []
    fake = FakeDynamo(fault=fault)
    policy = RetryPolicy(base_delay=0.01, max_delay=1.0, sleep=sleeps.append, rand=lambda: 0.5)
    records = [put(f"k{i}", i) for i in range(1, 21)]
    result = apply_records(fake, "T", records, retry=policy)
    assert result.ok
    assert result.puts == 20
    assert result.retries == 3
    assert len(fake.items) == 20
    assert [len(c) for c in fake.calls] == [20, 10, 5, 3]  # only what was unprocessed goes again
    assert sleeps == pytest.approx([0.005, 0.01, 0.02])


def test_unprocessed_items_that_match_no_request_make_the_whole_call_go_again() -> None:
    class Garbled:
        def __init__(self) -> None:
            self.calls: list[list[dict[str, Any]]] = []

        def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
            self.calls.append(RequestItems["T"])
            if len(self.calls) == 1:
                return {"UnprocessedItems": {"T": [{"PutRequest": {"Item": keys("nobody-sent-this")}}]}}
            return {"UnprocessedItems": {}}

    client = Garbled()
    result = apply_records(client, "T", [put("a", 1), put("b", 2)], retry=NO_SLEEP)
    assert result.ok
    assert [len(c) for c in client.calls] == [2, 2]  # not counted as landed on a guess


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
        ("WhateverTheServerSaid", 502),
    ],
)
def test_throttling_and_5xx_are_retried_with_full_jitter(code: str, status: int) -> None:
    errors = iter([client_error(code, status)] * 4)
    fake = FakeDynamo(fault=lambda n, r: next(errors, None))
    sleeps: list[float] = []
    rands = itertools.cycle([0.9, 0.1, 0.5, 1.0])
    policy = RetryPolicy(base_delay=0.1, max_delay=0.5, sleep=sleeps.append, rand=lambda: next(rands))
    result = apply_records(fake, "T", [put("a", 1), put("b", 2)], retry=policy)
    assert result.ok
    assert result.retries == 4
    assert result.puts == 2
    # full jitter: rand × min(cap, base × 2^(n-1)) for n = 1..4
    assert sleeps == pytest.approx([0.9 * 0.1, 0.1 * 0.2, 0.5 * 0.4, 1.0 * 0.5])


def test_connection_errors_are_retried() -> None:
    errors = iter([botocore.exceptions.EndpointConnectionError(endpoint_url="http://x")])
    fake = FakeDynamo(fault=lambda n, r: next(errors, None))
    result = apply_records(fake, "T", [put("a", 1)], retry=NO_SLEEP)
    assert result.ok
    assert result.retries == 1


def test_full_jitter_spreads_delays_over_the_whole_window() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    delays = [policy.delay(4) for _ in range(2000)]
    assert 0.0 <= min(delays) < 0.5
    assert 7.5 < max(delays) <= 8.0


def test_a_validation_error_fails_only_the_bad_key() -> None:
    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        if any("bad" in r.get("PutRequest", {}).get("Item", {}) for r in requests):
            return client_error("ValidationException")
        return None

    sleeps: list[float] = []
    fake = FakeDynamo(fault=fault)
    records = [put(f"k{i}", i) for i in range(1, 11)] + [put("k3", 20, bad={"S": "x"})]
    result = apply_records(fake, "T", records, retry=RetryPolicy(sleep=sleeps.append))
    assert len(fake.items) == 9
    assert fake.item("k3") is None
    assert [f.keys for f in result.failed] == [keys("k3")]
    failed = result.failed[0]
    assert failed.code == "ValidationException"
    assert not failed.retryable
    assert failed.first_sequence == f"{3:021d}"  # k3's earliest record, not its last (seq 20)
    assert sleeps == []  # not retried
    assert result.lowest_failed_sequence == f"{3:021d}"


def test_retries_give_up_after_max_attempts_and_report_the_keys() -> None:
    fake = FakeDynamo(fault=lambda n, r: client_error("ThrottlingException"))
    result = apply_records(
        fake, "T", [put("a", 5), put("b", 6)], retry=RetryPolicy(max_attempts=3, sleep=lambda s: None)
    )
    assert len(fake.calls) == 3
    assert result.retries == 2
    assert {f.code for f in result.failed} == {"ThrottlingException"}
    assert all(f.retryable for f in result.failed)
    assert result.lowest_failed_sequence == f"{5:021d}"


# --------------------------------------------------------------------------------------------------
# Deadline and the lowest failing sequence number
# --------------------------------------------------------------------------------------------------


def test_deadline_stops_retrying_and_reports_the_lowest_failing_sequence() -> None:
    clock = {"left": 30.0}

    def sleep(seconds: float) -> None:
        clock["left"] -= seconds

    fake = FakeDynamo(fault=lambda n, r: client_error("ProvisionedThroughputExceededException"))
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, safety_margin_s=5.0, sleep=sleep, rand=lambda: 1.0)
    records = [put("b", 12), put("a", 11), put("b", 13)]
    result = apply_records(fake, "T", records, time_left=lambda: clock["left"], retry=policy, max_workers=1)
    assert not result.ok
    assert clock["left"] >= 5.0
    assert {key_id(f.keys) for f in result.failed} == {key_id(keys("a")), key_id(keys("b"))}
    assert {f.code for f in result.failed} == {"Deadline"}
    assert result.lowest_failed_sequence == f"{11:021d}"


def test_nothing_is_attempted_when_time_is_already_short() -> None:
    fake = FakeDynamo()
    result = apply_records(fake, "T", [put("a", 3)], time_left=lambda: 1.0, retry=RetryPolicy(safety_margin_s=5.0))
    assert fake.calls == []
    assert result.lowest_failed_sequence == f"{3:021d}"


def test_lowest_failed_sequence_is_the_earliest_record_of_a_failed_key() -> None:
    # K changes at 10 and 30 (coalesced into one write of the image at 30); J lands at 20.
    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        return [i for i, r in enumerate(requests) if r["PutRequest"]["Item"]["pk"]["S"] == "K"]

    fake = FakeDynamo(fault=fault)
    records = [put("K", 10, v={"N": "1"}), put("J", 20), put("K", 30, v={"N": "2"})]
    result = apply_records(fake, "T", records, retry=RetryPolicy(max_attempts=2, sleep=lambda s: None))
    assert fake.item("J") is not None
    assert fake.item("K") is None
    (failed,) = result.failed
    assert (failed.first_sequence, failed.last_sequence, failed.records) == (f"{10:021d}", f"{30:021d}", 2)
    assert result.lowest_failed_sequence == f"{10:021d}"  # resuming at 30 would skip K's change at 10
    assert last_applied_sequence(records, result) is None


def test_sequence_numbers_compare_as_integers() -> None:
    failing = {"k2", "k3"}

    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        return [i for i, r in enumerate(requests) if r["PutRequest"]["Item"]["pk"]["S"] in failing]

    records = [put("k0", 1), put("k1", 1), put("k2", 1), put("k3", 1)]
    for record, seq in zip(records, ["80", "900", "950", "1000"], strict=True):
        record["dynamodb"]["SequenceNumber"] = seq  # as text, "1000" < "80" < "900" < "950"
    result = apply_records(FakeDynamo(fault=fault), "T", records, retry=RetryPolicy(max_attempts=1))
    assert result.lowest_failed_sequence == "950"
    assert last_applied_sequence(records, result) == "900"
    assert last_applied_sequence(records, ApplyResult()) == "1000"


def test_last_applied_sequence_stops_before_the_lowest_failure() -> None:
    def fault(n: int, requests: list[dict[str, Any]]) -> Any:
        return [i for i, r in enumerate(requests) if "PutRequest" in r and r["PutRequest"]["Item"]["pk"]["S"] == "F"]

    records = [put("A", 1), put("B", 2), put("F", 3), put("A", 4), put("F", 5), put("C", 6)]
    result = apply_records(FakeDynamo(fault=fault), "T", records, retry=RetryPolicy(max_attempts=1))
    assert result.lowest_failed_sequence == f"{3:021d}"
    assert last_applied_sequence(records, result) == f"{2:021d}"


def test_oldest_record_age_uses_approximate_creation_time() -> None:
    records = [put("a", 1), put("b", 2)]
    records[0]["dynamodb"]["ApproximateCreationDateTime"] = 1000.0
    records[1]["dynamodb"]["ApproximateCreationDateTime"] = 1500.0
    assert oldest_record_age_s(records, now=1600.0) == pytest.approx(600.0)
