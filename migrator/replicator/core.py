"""Apply a batch of DynamoDB stream records to the target table.

This is the one core both drivers use: the Lambda handler (``handler.py``) and the local runner
(``migrator replicate --local``). The Lambda zip holds this package alone, so it imports nothing but
the standard library and botocore.

What it guarantees (docs/architecture.md, invariants 3 and 4):

* Full images are written as the raw ``AttributeValue`` maps the stream carries — no
  ``TypeDeserializer``, no float, no ``Decimal``: sets, binary, 38-digit numbers, empty strings,
  nested maps and lists reach the target byte for byte. The one thing undone is the *transport*
  encoding of binary values: in a Lambda event (JSON) ``B``/``BS`` values are base64 text, and handing
  that text to botocore would base64 it a second time, so text binary values are decoded back to the
  bytes they stand for. Values that are already ``bytes`` (a ``GetRecords`` answer) pass untouched.
* Every ``AttributeValue`` is checked (one tag, the Python type botocore expects) while it is
  converted, so a record that botocore would refuse is refused up front (reported at its sequence
  number, with the records after it) and the requests the core builds are valid by construction;
  its client may skip botocore's own parameter validation (the Lambda's does). Calls are sized with
  an upper bound of botocore's JSON body, kept under the 16 MB limit.
* Within a batch only the last change per key is written (the records are taken in stream order);
  one ``BatchWriteItem`` call never holds the same key twice, so several calls may be in flight at
  once without any two racing on one item.
* ``UnprocessedItems``, throttling and 5xx answers are retried with exponential backoff and full
  jitter until they land, the retry budget is spent, or ``time_left()`` runs short of the safety
  margin. Non-retryable errors fail the key (after isolating it from the rest of its call). The
  retrying is :func:`.batch.write_batch`, the one batch writer of migrator.
* Nothing is dropped silently: every key whose final write did not land is reported in
  :attr:`ApplyResult.failed`, and :attr:`ApplyResult.lowest_failed_sequence` is the lowest
  ``SequenceNumber`` among *all* records of those keys — the point from which the batch must be
  retried so that no change of a failed key is skipped.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .batch import DEFAULT_RETRY, MAX_BATCH_WRITE, RetryPolicy, WriteOutcome, key_id, write_batch

#: ``BatchWriteItem`` accepts at most this many requests per call.
MAX_BATCH_REQUESTS = MAX_BATCH_WRITE
#: ``BatchWriteItem`` rejects a request body above 16 MB; this budget keeps room for the envelope.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
REQUEST_BYTES_BUDGET = MAX_REQUEST_BYTES - 256 * 1024

WRITE_EVENTS = frozenset({"INSERT", "MODIFY"})
REMOVE_EVENT = "REMOVE"


class RecordError(ValueError):
    """A stream record that cannot be applied (no NewImage, no Keys, an unknown event, a malformed value)."""


@dataclass(frozen=True)
class FailedKey:
    """A key whose final write did not land in the target."""

    keys: dict[str, Any]
    first_sequence: str  # lowest SequenceNumber among this batch's records of the key
    last_sequence: str  # the record whose image was (to be) written
    records: int  # how many records of the batch were coalesced into the write
    code: str  # error code (``Deadline``, ``RetriesExhausted`` … or the service's)
    message: str
    retryable: bool  # False: the service refused the write itself (it will fail again)


@dataclass
class ApplyResult:
    records_in: int = 0
    writes: int = 0  # distinct keys after keeping the last change per key
    puts: int = 0  # puts that landed
    deletes: int = 0  # deletes that landed
    retries: int = 0  # calls repeated after throttling, 5xx or UnprocessedItems
    calls: int = 0  # BatchWriteItem calls made
    failed: list[FailedKey] = field(default_factory=list)
    refused: int = 0  # records left unapplied from the first one that could not be applied (see apply_records)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def lowest_failed_sequence(self) -> str | None:
        """The lowest SequenceNumber of any record of a failed key (compared as integers)."""
        if not self.failed:
            return None
        return min((f.first_sequence for f in self.failed), key=int)

    @property
    def error_codes(self) -> list[str]:
        return sorted({f.code for f in self.failed})


@dataclass
class _Write:
    """The one write a key gets in this batch: the request of its last record."""

    key: Hashable  # what tells the Keys apart (:func:`.batch.key_id`)
    keys: dict[str, Any]
    request: dict[str, Any]
    is_put: bool
    first_seq: str
    last_seq: str
    records: int = 1
    size: int = 0


# --------------------------------------------------------------------------------------------------
# Records → writes
# --------------------------------------------------------------------------------------------------


def _decode_b64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Invalid("binary value is not valid base64") from exc
    raise _Invalid(f"binary value of type {type(value).__name__}")


class _Invalid(Exception):
    """A value that is no AttributeValue botocore would accept; the path is added while unwinding."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []  # innermost first

    def record_error(self, where: str) -> RecordError:
        return RecordError(f"{where}{''.join(reversed(self.path))}: {self.reason}")


#: What ``json.dumps`` — and so botocore's request body — makes of a ``str`` (ASCII, escaped, quoted).
_json_str = json.encoder.encode_basestring_ascii
_STRING_TAGS = frozenset({"S", "N"})
_BOOL_TAGS = frozenset({"BOOL", "NULL"})
_SET_TAGS = frozenset({"SS", "NS"})
_SEQUENCE = (list, tuple)


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3) + 2  # base64 text, quoted


def _json_key(name: Any) -> int:
    if type(name) is not str and not isinstance(name, str):
        raise _Invalid(f"attribute name of type {type(name).__name__}")
    return len(_json_str(name))


def _wire(value: Any) -> tuple[Any, int]:
    """One ``AttributeValue`` as botocore must be handed it, and its size in botocore's JSON body.

    The value comes back as it is (the same object) unless it holds binary values as base64 text,
    which become the bytes they stand for. Every tag and the Python type of every member are checked
    here — exactly one of S N B SS NS BS M L NULL BOOL, strings as ``str``, binary as bytes or base64
    text, sets and lists as lists, maps with ``str`` names — so a request built from wired values is
    one botocore's parameter validation would accept: the core's client can skip that validation.
    The size is an upper bound of the value's length in ``json.dumps`` with its default separators
    (``", "`` and ``": "``, which is how botocore serialises the body): exact but for one separator
    counted after the last member of each map, list and set.
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _Invalid(f"not an AttributeValue: {type(value).__name__}")
    if len(value) != 1:
        raise _Invalid(f"not an AttributeValue: {len(value)} members")
    ((tag, inner),) = value.items()
    # The envelope {"<tag>": <inner>} adds 6 bytes and the tag itself.
    if tag in _STRING_TAGS:
        if type(inner) is not str and not isinstance(inner, str):
            raise _Invalid(f"{tag} value of type {type(inner).__name__}")
        return value, 7 + len(_json_str(inner))
    if tag == "M":
        if type(inner) is not dict and not isinstance(inner, Mapping):
            raise _Invalid(f"M value of type {type(inner).__name__}")
        out: dict[str, Any] = {}
        size = 9
        for name, member in inner.items():
            try:
                out[name], n = _wire(member)
                size += _json_key(name) + n + 4  # "name": value,
            except _Invalid as error:
                error.path.append(f".{name}")
                raise
        return {"M": out}, size
    if tag == "L":
        if not isinstance(inner, _SEQUENCE):
            raise _Invalid(f"L value of type {type(inner).__name__}")
        items: list[Any] = []
        size = 9
        for index, member in enumerate(inner):
            try:
                wired, n = _wire(member)
            except _Invalid as error:
                error.path.append(f"[{index}]")
                raise
            items.append(wired)
            size += n + 2
        return {"L": items}, size
    if tag == "B":
        if type(inner) is bytes:
            return value, 7 + _b64_len(len(inner))
        data = _decode_b64(inner)
        return {"B": data}, 7 + _b64_len(len(data))
    if tag in _BOOL_TAGS:
        if type(inner) is not bool:
            raise _Invalid(f"{tag} value of type {type(inner).__name__}")
        return value, 15  # {"NULL": false}
    if tag in _SET_TAGS:
        if not isinstance(inner, _SEQUENCE) or not all(isinstance(v, str) for v in inner):
            raise _Invalid(f"{tag} value is not a list of str")
        return value, 10 + sum(len(_json_str(v)) + 2 for v in inner)
    if tag == "BS":
        if not isinstance(inner, _SEQUENCE):
            raise _Invalid(f"BS value of type {type(inner).__name__}")
        if all(type(v) is bytes for v in inner):
            return value, 10 + sum(_b64_len(len(v)) + 2 for v in inner)
        members = [_decode_b64(v) for v in inner]
        return {"BS": members}, 10 + sum(_b64_len(len(v)) + 2 for v in members)
    raise _Invalid(f"unknown AttributeValue type {tag!r}")


def _wire_map(image: Mapping[str, Any], where: str) -> tuple[dict[str, Any], int]:
    """A whole item (name → AttributeValue) and its size in the JSON body, as :func:`_wire` does a value."""
    if type(image) is not dict and not isinstance(image, Mapping):
        raise RecordError(f"{where}: not a map of attributes: {type(image).__name__}")
    out: dict[str, Any] = {}
    size = 2
    for name, value in image.items():
        try:
            out[name], n = _wire(value)
            size += _json_key(name) + n + 4
        except _Invalid as error:
            error.path.append(f".{name}")
            raise error.record_error(where) from None
    return out, size


#: ``{"PutRequest": {"Item": <item>}}`` and ``{"DeleteRequest": {"Key": <key>}}`` around the map, and ", ".
_PUT_ENVELOPE = len(json.dumps({"PutRequest": {"Item": {}}})) - 2 + 2
_DELETE_ENVELOPE = len(json.dumps({"DeleteRequest": {"Key": {}}})) - 2 + 2


def _sequence(record: Mapping[str, Any], index: int) -> str:
    seq = record.get("dynamodb", {}).get("SequenceNumber")
    if not isinstance(seq, str) or not seq.isdigit():
        raise RecordError(f"record {index}: missing or malformed dynamodb.SequenceNumber ({seq!r})")
    return seq


@dataclass(frozen=True)
class _Change:
    key: Hashable
    keys: dict[str, Any]
    request: dict[str, Any]
    is_put: bool
    seq: str
    size: int


def _change(record: Mapping[str, Any], index: int, seq: str) -> _Change:
    """One record as the write it asks for, checked and converted (:func:`_wire`); RecordError if it cannot be."""
    event = record.get("eventName")
    body = record["dynamodb"]
    raw_keys = body.get("Keys")
    if not isinstance(raw_keys, Mapping) or not raw_keys:
        raise RecordError(f"record {index} (seq {seq}): no dynamodb.Keys")
    keys, key_size = _wire_map(raw_keys, f"record {index} Keys")
    if event in WRITE_EVENTS:
        image = body.get("NewImage")
        if not isinstance(image, Mapping) or not image:
            view = body.get("StreamViewType", "unknown")
            raise RecordError(
                f"record {index} (seq {seq}, {event}) has no NewImage (stream view type {view}): "
                "the replicator needs a stream of NEW_IMAGE or NEW_AND_OLD_IMAGES; "
                "refusing to write a partial item"
            )
        item, item_size = _wire_map(image, f"record {index}")
        return _Change(key_id(keys), keys, {"PutRequest": {"Item": item}}, True, seq, _PUT_ENVELOPE + item_size)
    if event == REMOVE_EVENT:  # a delete by anyone, TTL expiry (userIdentity Service) included
        return _Change(key_id(keys), keys, {"DeleteRequest": {"Key": keys}}, False, seq, _DELETE_ENVELOPE + key_size)
    raise RecordError(f"record {index} (seq {seq}): unknown eventName {event!r}")


@dataclass(frozen=True)
class Refusal:
    """The first record of a batch that cannot be applied: it and every record after it are left out."""

    index: int
    seq: str
    keys: dict[str, Any]
    error: RecordError


def plan_batch(records: Sequence[Mapping[str, Any]]) -> tuple[list[_Write], Refusal | None]:
    """Keep the last change per key (records are in stream order), up to the first record that cannot be
    applied. Raises RecordError only for a record without a ``dynamodb`` section or a usable
    ``SequenceNumber``: such a record cannot be reported by sequence number."""
    writes: dict[Hashable, _Write] = {}
    for index, record in enumerate(records):
        if not isinstance(record.get("dynamodb"), Mapping):
            raise RecordError(f"record {index}: no 'dynamodb' section")
        seq = _sequence(record, index)
        try:
            change = _change(record, index, seq)
        except RecordError as error:
            raw = record["dynamodb"].get("Keys")
            return list(writes.values()), Refusal(index, seq, dict(raw) if isinstance(raw, Mapping) else {}, error)
        previous = writes.get(change.key)
        if previous is None:
            writes[change.key] = _Write(
                change.key, change.keys, change.request, change.is_put, seq, seq, size=change.size
            )
        else:
            previous.request = change.request
            previous.is_put = change.is_put
            previous.last_seq = seq
            previous.records += 1
            previous.size = change.size
            if int(seq) < int(previous.first_seq):
                previous.first_seq = seq
    return list(writes.values()), None


def plan_writes(records: Sequence[Mapping[str, Any]]) -> list[_Write]:
    """Keep the last change per key (records are in stream order); RecordError for any record that cannot
    be applied, before any call."""
    writes, refusal = plan_batch(records)
    if refusal is not None:
        raise refusal.error
    return writes


def chunk_writes(writes: Iterable[_Write]) -> list[list[_Write]]:
    """Split into BatchWriteItem-sized chunks: ≤ 25 requests and under the 16 MB body limit."""
    chunks: list[list[_Write]] = []
    current: list[_Write] = []
    size = 0
    for write in writes:
        if current and (len(current) >= MAX_BATCH_REQUESTS or size + write.size > REQUEST_BYTES_BUDGET):
            chunks.append(current)
            current, size = [], 0
        current.append(write)
        size += write.size
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------------------------------
# Writes → BatchWriteItem calls
# --------------------------------------------------------------------------------------------------


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(max_workers: int) -> ThreadPoolExecutor:
    """Worker threads for up to ``max_workers`` calls at once, kept from batch to batch.

    Starting and joining a pool for every batch cost about as much CPU as planning the batch; a warm
    Lambda (or the local runner) reuses these threads, which wait idle between batches. Callers in
    several threads at once share them (still at most ``max_workers`` calls in flight). The key holds
    the process id, so a forked child never uses threads that do not exist in it.
    """
    key = (os.getpid(), max_workers)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="replicator")
        return pool


def apply_records(
    client: Any,
    table_name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    time_left: Callable[[], float] | None = None,
    max_workers: int = 8,
    retry: RetryPolicy | None = None,
) -> ApplyResult:
    """Apply stream records (in stream order) to ``table_name`` through the low-level ``client``.

    ``time_left`` returns the seconds still available (the Lambda's remaining time); ``None`` means
    no deadline. A record that cannot be applied (no NewImage on INSERT/MODIFY, no Keys, an unknown
    event, a malformed value) is reported in :attr:`ApplyResult.failed` with code ``RecordError`` at its
    sequence number; only the records before it are applied. Raises :class:`RecordError` only for a
    record without a usable ``SequenceNumber``.
    """
    policy = retry or DEFAULT_RETRY
    result = ApplyResult(records_in=len(records))
    writes, refusal = plan_batch(records)
    result.writes = len(writes)
    if refusal is not None:
        # Reported by its sequence number: the records before it are applied (and checkpointed by the
        # driver); it and every later record come again, and after the mapping's retries the batch goes
        # to the failure destination, where redrive re-reads the key from the source.
        result.refused = len(records) - refusal.index
        result.failed.append(
            FailedKey(refusal.keys, refusal.seq, refusal.seq, 1, "RecordError", str(refusal.error), False)
        )
    if not writes:
        return result
    key_names = frozenset(name for w in writes for name in w.keys)
    chunks = chunk_writes(writes)

    def run(chunk: list[_Write]) -> WriteOutcome:
        return write_batch(
            client, table_name, [w.request for w in chunk], key_names=key_names, retry=policy, time_left=time_left
        )

    outcomes: list[WriteOutcome]
    workers = max(1, min(max_workers, len(chunks)))
    if workers == 1:
        outcomes = [run(chunk) for chunk in chunks]
    else:
        futures = [_pool(max_workers).submit(run, chunk) for chunk in chunks]
        # Every call has ended before this returns or raises: no write of this batch may still be
        # in flight (or frozen with the Lambda) when the next batch, or a retry of this one, starts.
        wait(futures)
        outcomes = [future.result() for future in futures]
    landed: list[_Write] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        result.calls += outcome.calls
        result.retries += outcome.retries
        landed += [chunk[i] for i in outcome.landed]
        for f in outcome.failed:
            w = chunk[f.index]
            result.failed.append(FailedKey(w.keys, w.first_seq, w.last_seq, w.records, f.code, f.message, f.retryable))
    result.puts = sum(1 for w in landed if w.is_put)
    result.deletes = len(landed) - result.puts
    return result


def last_applied_sequence(records: Sequence[Mapping[str, Any]], result: ApplyResult) -> str | None:
    """The highest SequenceNumber up to which every change of ``records`` is in the target.

    Without failures: the last record's. With failures: the highest record strictly below
    :attr:`ApplyResult.lowest_failed_sequence` (``None`` when there is none) — resuming *after* it
    replays every record of every failed key.
    """
    sequences = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
    lowest = result.lowest_failed_sequence
    if lowest is not None:
        sequences = [s for s in sequences if int(s) < int(lowest)]
    return max(sequences, key=int) if sequences else None


def record_epoch(record: Mapping[str, Any]) -> float | None:
    """ApproximateCreationDateTime as epoch seconds (a number in events, a datetime from boto3)."""
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def oldest_record_age_s(records: Iterable[Mapping[str, Any]], now: float | None = None) -> float | None:
    epochs = [e for e in (record_epoch(r) for r in records) if e is not None]
    if not epochs:
        return None
    return max(0.0, (time.time() if now is None else now) - min(epochs))
