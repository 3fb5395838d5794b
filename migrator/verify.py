"""Verify that two DynamoDB tables (in different accounts) hold the same items, and repair them.

``verify_tables`` scans both tables at once with parallel segmented scans and keeps, per side, only a
map *canonical key → 16-byte digest of the canonical item*: memory stays at roughly a hundred bytes
per item, whatever the item size, so millions of items fit.

The canonical form follows DynamoDB's own notion of equality, exactly and type-preserving:

* attribute order never matters, set element order never matters, list order does;
* numbers compare by value (``1`` == ``1.0`` == ``1.00`` == ``1E0``, ``-0`` == ``0``), normalised
  through :class:`decimal.Decimal` with no rounding and no float;
* every type keeps its tag: the string ``"1"``, the number ``1`` and the binary ``b"1"`` all differ;
* binary compares bytes; maps and lists recurse.

Differences found by the scan are *candidates*: a replicator still catching up (or a write that landed
while the scan ran) produces them too. Each candidate is re-read from BOTH sides with consistent
``BatchGetItem`` reads, up to ``recheck_rounds`` times with ``recheck_delay`` between rounds; only what
persists through every round is reported.

``repair`` writes the CURRENT source item (consistent read) into the target, or deletes the target
item when the source no longer has it. It never writes an image it did not just read.

Clients are low-level boto3 DynamoDB clients; values are raw ``AttributeValue`` maps as the client
returns them (``B``/``BS`` values as ``bytes``). Clients are shared between worker threads, which
boto3 clients support.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

AttributeValue = Mapping[str, Any]
"""A raw DynamoDB AttributeValue, e.g. ``{"S": "a"}`` or ``{"M": {...}}``."""
Item = Mapping[str, AttributeValue]
Key = dict[str, dict[str, Any]]
"""A key as the boto3 client takes it: attribute name → AttributeValue (``B`` as ``bytes``)."""
JsonKey = dict[str, dict[str, str]]
"""A key as plain JSON: like :data:`Key` but ``B`` values base64-encoded (DynamoDB JSON)."""
Progress = Callable[[str, int], None]

DIGEST_SIZE = 16
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
MAX_UNPROCESSED_ATTEMPTS = 12
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 5.0

MISSING = "missing"
DIFFERENT = "different"
EXTRANEOUS = "extraneous"
KINDS = (MISSING, DIFFERENT, EXTRANEOUS)


# --------------------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------------------


def canonical_number(text: str) -> str:
    """The canonical text of a DynamoDB number: plain notation, no exponent, no trailing zeros.

    Exact (no context rounding, so 38 significant digits survive); ``-0`` becomes ``0``. This is also
    the form DynamoDB itself returns, so a canonical key is a valid key to send back.
    """
    if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        return text  # fast path: a plain non-negative integer is already canonical
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a DynamoDB number: {text!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a DynamoDB number: {text!r}")
    sign, digit_tuple, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    if exponent >= 0:
        plain = digits + "0" * exponent
    else:
        point = len(digits) + exponent
        plain = f"{digits[:point]}.{digits[point:]}" if point > 0 else "0." + "0" * -point + digits
    return "-" + plain if sign else plain


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):  # DynamoDB JSON wire form: base64
        return base64.b64decode(value, validate=True)
    raise TypeError(f"binary value must be bytes, not {type(value).__name__}")


_PACK_LEN = struct.Struct(">I").pack

# One distinct tag per DynamoDB type; with explicit lengths and counts the encoding is prefix-free,
# hence injective: two values encode alike exactly when DynamoDB holds them equal.
_SCALAR_TAGS = {"S": b"s", "N": b"n", "B": b"b"}
_SET_TAGS = {"SS": (b"S", "S"), "NS": (b"N", "N"), "BS": (b"B", "B")}


def _scalar_payload(tag: str, value: Any) -> bytes:
    if tag == "S":
        if not isinstance(value, str):
            raise TypeError(f"S value must be str, not {type(value).__name__}")
        return value.encode("utf-8")
    if tag == "N":
        if not isinstance(value, str):
            raise TypeError(f"N value must be str, not {type(value).__name__}")
        return canonical_number(value).encode("ascii")
    return _as_bytes(value)


def _encode(value: AttributeValue, out: list[bytes]) -> None:
    if len(value) != 1:
        raise ValueError(f"an AttributeValue has exactly one type, got {sorted(value)}")
    ((tag, inner),) = value.items()
    scalar = _SCALAR_TAGS.get(tag)
    if scalar is not None:
        payload = _scalar_payload(tag, inner)
        out += (scalar, _PACK_LEN(len(payload)), payload)
    elif tag == "M":
        _encode_map(inner, out)
    elif tag == "L":
        out += (b"l", _PACK_LEN(len(inner)))
        for element in inner:
            _encode(element, out)
    elif tag in _SET_TAGS:
        set_tag, element_tag = _SET_TAGS[tag]
        elements = sorted({_scalar_payload(element_tag, element) for element in inner})
        out += (set_tag, _PACK_LEN(len(elements)))
        for payload in elements:
            out += (_PACK_LEN(len(payload)), payload)
    elif tag == "BOOL":
        out.append(b"T" if inner else b"F")
    elif tag == "NULL":
        out.append(b"z")
    else:
        raise ValueError(f"unknown AttributeValue type {tag!r}")


def _encode_map(attributes: Mapping[str, AttributeValue], out: list[bytes]) -> None:
    out += (b"m", _PACK_LEN(len(attributes)))
    for name in sorted(attributes):
        encoded = name.encode("utf-8")
        out += (_PACK_LEN(len(encoded)), encoded)
        _encode(attributes[name], out)


def canonical_item(item: Item) -> bytes:
    """The canonical byte form of a whole item (equal exactly when DynamoDB holds the items equal)."""
    out: list[bytes] = []
    _encode_map(item, out)
    return b"".join(out)


def item_digest(item: Item) -> bytes:
    """A 16-byte BLAKE2b digest of :func:`canonical_item`."""
    return hashlib.blake2b(canonical_item(item), digest_size=DIGEST_SIZE).digest()


_KEY_TYPES = {"S": 0, "N": 1, "B": 2}
_KEY_TYPE_NAMES = ("S", "N", "B")


def canonical_key(item: Item, key_names: Sequence[str]) -> tuple[bytes, bool]:
    """``(canonical key bytes, raw form differs from the canonical one)`` for an item or a key.

    The bytes are hashable, compact and reversible (:func:`decode_key`); numbers are canonical, so
    ``{"N": "1.0"}`` and ``{"N": "1"}`` give the same key, as in DynamoDB.
    """
    parts: list[bytes] = []
    differs = False
    for name in key_names:
        value = item.get(name)
        if value is None:
            raise ValueError(f"item has no key attribute {name!r}: check key_names")
        if len(value) != 1:
            raise ValueError(f"key attribute {name!r} is not an AttributeValue: {value!r}")
        ((tag, inner),) = value.items()
        code = _KEY_TYPES.get(tag)
        if code is None:
            raise ValueError(f"key attribute {name!r} must be S, N or B, not {tag}")
        payload = _scalar_payload(tag, inner)
        if tag == "B":
            differs = differs or not isinstance(inner, bytes)
        elif tag == "N":
            differs = differs or payload != inner.encode("ascii", "replace")
        parts += (bytes((code,)), _PACK_LEN(len(payload)), payload)
    return b"".join(parts), differs


def decode_key(encoded: bytes, key_names: Sequence[str]) -> Key:
    """The boto3 key (``B`` as bytes, numbers canonical) of a :func:`canonical_key`."""
    key: Key = {}
    offset = 0
    for name in key_names:
        tag = _KEY_TYPE_NAMES[encoded[offset]]
        (length,) = struct.unpack_from(">I", encoded, offset + 1)
        payload = encoded[offset + 5 : offset + 5 + length]
        offset += 5 + length
        key[name] = {tag: payload if tag == "B" else payload.decode("utf-8")}
    return key


def key_to_json(key: Mapping[str, AttributeValue]) -> JsonKey:
    """A key as plain JSON (DynamoDB JSON: ``B`` base64-encoded)."""
    result: JsonKey = {}
    for name, value in key.items():
        ((tag, inner),) = value.items()
        result[name] = {tag: base64.b64encode(_as_bytes(inner)).decode("ascii") if tag == "B" else inner}
    return result


def key_from_json(key: Mapping[str, Mapping[str, str]]) -> Key:
    """The boto3 form of a :func:`key_to_json` key (``B`` decoded from base64)."""
    result: Key = {}
    for name, value in key.items():
        ((tag, inner),) = value.items()
        result[name] = {tag: base64.b64decode(inner, validate=True) if tag == "B" else inner}
    return result


def table_key_names(client: Any, table: str) -> list[str]:
    """The key attribute names of ``table`` (hash key first)."""
    schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
    ordered = sorted(schema, key=lambda element: element["KeyType"] != "HASH")
    return [str(element["AttributeName"]) for element in ordered]


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """What ``verify_tables`` found. Counts are differences that persisted through every re-check."""

    source_items: int
    target_items: int
    missing: int = 0
    different: int = 0
    extraneous: int = 0
    missing_examples: list[JsonKey] = field(default_factory=list)
    different_examples: list[JsonKey] = field(default_factory=list)
    extraneous_examples: list[JsonKey] = field(default_factory=list)
    differing_keys: list[Key] = field(default_factory=list, repr=False)
    """Every differing key of every kind (boto3 form), for :func:`repair`; not part of ``to_json``."""

    @property
    def clean(self) -> bool:
        return self.missing == 0 and self.different == 0 and self.extraneous == 0

    @property
    def differences(self) -> int:
        return self.missing + self.different + self.extraneous

    def to_json(self) -> dict[str, Any]:
        return {
            "source_items": self.source_items,
            "target_items": self.target_items,
            "missing": self.missing,
            "different": self.different,
            "extraneous": self.extraneous,
            "examples": {
                MISSING: list(self.missing_examples),
                DIFFERENT: list(self.different_examples),
                EXTRANEOUS: list(self.extraneous_examples),
            },
        }


@dataclass
class RepairResult:
    """What ``repair`` did: items written into the target, items deleted from it."""

    written: int = 0
    deleted: int = 0

    @property
    def keys(self) -> int:
        return self.written + self.deleted

    def to_json(self) -> dict[str, int]:
        return {"written": self.written, "deleted": self.deleted}


@dataclass
class VerifyRepairResult:
    before: VerifyResult
    repair: RepairResult | None
    after: VerifyResult | None

    @property
    def clean(self) -> bool:
        return (self.after or self.before).clean


# --------------------------------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------------------------------


class _Counter:
    """Thread-safe running counts per stage, reported to a progress callback one call at a time."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, stage: str, amount: int) -> None:
        with self._lock:
            total = self._counts.get(stage, 0) + amount
            self._counts[stage] = total
            if self._progress is not None:
                self._progress(stage, total)

    def report(self, stage: str, value: int) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress(stage, value)


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _run_all(executor: ThreadPoolExecutor, calls: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on ``executor``; results in order; the first failure cancels the rest and raises."""
    futures: list[Future[Any]] = [executor.submit(call) for call in calls]
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in done:
        if future.exception() is not None:
            for other in pending:
                other.cancel()
            wait(pending)
            future.result()
    return [future.result() for future in futures]


def batch_get(
    client: Any, table: str, keys: Sequence[Mapping[str, AttributeValue]], *, consistent: bool = True
) -> list[dict[str, Any]]:
    """Consistent ``BatchGetItem`` of up to 100 distinct keys; retries ``UnprocessedKeys`` with backoff."""
    if len(keys) > BATCH_GET_LIMIT:
        raise ValueError(f"at most {BATCH_GET_LIMIT} keys per BatchGetItem")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: {"Keys": list(keys), "ConsistentRead": consistent}}
    attempt = 0
    while request:
        response = client.batch_get_item(RequestItems=request)
        items.extend(response.get("Responses", {}).get(table, []))
        request = {name: value for name, value in (response.get("UnprocessedKeys") or {}).items() if value}
        if request:
            attempt += 1
            if attempt >= MAX_UNPROCESSED_ATTEMPTS:
                left = len(request.get(table, {}).get("Keys", []))
                raise RuntimeError(f"BatchGetItem on {table} left {left} keys unprocessed after {attempt} attempts")
            _backoff(attempt)
    return items


def batch_write(client: Any, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """``BatchWriteItem`` of up to 25 requests; retries ``UnprocessedItems`` with backoff."""
    if len(requests) > BATCH_WRITE_LIMIT:
        raise ValueError(f"at most {BATCH_WRITE_LIMIT} requests per BatchWriteItem")
    pending: dict[str, Any] = {table: list(requests)}
    attempt = 0
    while pending:
        response = client.batch_write_item(RequestItems=pending)
        pending = {name: value for name, value in (response.get("UnprocessedItems") or {}).items() if value}
        if pending:
            attempt += 1
            if attempt >= MAX_UNPROCESSED_ATTEMPTS:
                left = len(pending.get(table, []))
                raise RuntimeError(
                    f"BatchWriteItem on {table} left {left} requests unprocessed after {attempt} attempts"
                )
            _backoff(attempt)


# --------------------------------------------------------------------------------------------------
# Scan
# --------------------------------------------------------------------------------------------------


@dataclass
class _Side:
    """One table seen by the scan: canonical key → item digest, plus raw keys that are not canonical."""

    digests: dict[bytes, bytes] = field(default_factory=dict)
    raw_keys: dict[bytes, Key] = field(default_factory=dict)

    def merge(self, other: _Side) -> None:
        self.digests.update(other.digests)
        self.raw_keys.update(other.raw_keys)


def _scan_segment(
    client: Any,
    table: str,
    segment: int,
    total_segments: int,
    key_names: Sequence[str],
    page_size: int | None,
    counter: _Counter,
    stage: str,
) -> _Side:
    side = _Side()
    digests, raw_keys = side.digests, side.raw_keys
    request: dict[str, Any] = {"TableName": table}
    if total_segments > 1:
        request.update(Segment=segment, TotalSegments=total_segments)
    if page_size:
        request["Limit"] = page_size
    while True:
        response = client.scan(**request)
        page = response.get("Items", [])
        for item in page:
            key, raw = canonical_key(item, key_names)
            digests[key] = item_digest(item)
            if raw:
                raw_keys[key] = {name: dict(item[name]) for name in key_names}
        counter.add(stage, len(page))
        last = response.get("LastEvaluatedKey")
        if not last:
            return side
        request["ExclusiveStartKey"] = last


def _scan_both(
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    key_names: Sequence[str],
    segments: int,
    workers: int,
    page_size: int | None,
    counter: _Counter,
) -> tuple[_Side, _Side]:
    sides = (_Side(), _Side())
    tables = ((source_client, source_table, "source"), (target_client, target_table, "target"))
    # One pool per table, so each account gets ``workers`` concurrent scans whatever the other does.
    with (
        ThreadPoolExecutor(workers, "verify-src") as src_pool,
        ThreadPoolExecutor(workers, "verify-tgt") as tgt_pool,
    ):
        futures: list[tuple[int, Future[_Side]]] = []
        for index, (pool, (client, table, stage)) in enumerate(zip((src_pool, tgt_pool), tables, strict=True)):
            for segment in range(segments):
                future = pool.submit(
                    _scan_segment, client, table, segment, segments, key_names, page_size, counter, stage
                )
                futures.append((index, future))
        done, pending = wait([future for _, future in futures], return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                for other in pending:
                    other.cancel()
                future.result()
        for index, future in futures:
            sides[index].merge(future.result())
    return sides


# --------------------------------------------------------------------------------------------------
# Re-check
# --------------------------------------------------------------------------------------------------


def _classify(source_digest: bytes | None, target_digest: bytes | None) -> str | None:
    if source_digest == target_digest:
        return None  # equal, or absent from both
    if target_digest is None:
        return MISSING
    if source_digest is None:
        return EXTRANEOUS
    return DIFFERENT


def _read_digests(
    client: Any,
    table: str,
    keys: Sequence[bytes],
    raw_for: Callable[[bytes], Key],
    key_names: Sequence[str],
) -> list[Callable[[], dict[bytes, bytes]]]:
    """Calls that each read one chunk of ``keys`` consistently and return canonical key → digest."""

    def read(chunk: Sequence[bytes]) -> dict[bytes, bytes]:
        items = batch_get(client, table, [raw_for(key) for key in chunk])
        return {canonical_key(item, key_names)[0]: item_digest(item) for item in items}

    return [functools.partial(read, chunk) for chunk in _chunks(keys, BATCH_GET_LIMIT)]


def _recheck(
    candidates: dict[bytes, str],
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    key_names: Sequence[str],
    raw_for: Callable[[bytes], Key],
    rounds: int,
    delay: float,
    workers: int,
    counter: _Counter,
) -> dict[bytes, str]:
    """Re-read every candidate from both sides (consistently) until it matches or ``rounds`` run out."""
    with ThreadPoolExecutor(2 * workers, "verify-recheck") as executor:
        for round_number in range(rounds):
            if not candidates:
                break
            if round_number:
                time.sleep(delay)
            counter.report("recheck", len(candidates))
            keys = sorted(candidates)
            source_calls = _read_digests(source_client, source_table, keys, raw_for, key_names)
            target_calls = _read_digests(target_client, target_table, keys, raw_for, key_names)
            results = _run_all(executor, [*source_calls, *target_calls])
            source_now: dict[bytes, bytes] = {}
            target_now: dict[bytes, bytes] = {}
            for part in results[: len(source_calls)]:
                source_now.update(part)
            for part in results[len(source_calls) :]:
                target_now.update(part)
            still: dict[bytes, str] = {}
            for key in keys:
                kind = _classify(source_now.get(key), target_now.get(key))
                if kind is not None:
                    still[key] = kind
            candidates = still
    counter.report("recheck", len(candidates))
    return candidates


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def verify_tables(
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    *,
    key_names: Sequence[str],
    segments: int = 8,
    workers: int = 8,
    recheck_rounds: int = 3,
    recheck_delay: float = 1.0,
    examples: int = 5,
    progress: Progress | None = None,
    page_size: int | None = None,
) -> VerifyResult:
    """Compare every item of ``source_table`` with ``target_table``.

    Both tables are scanned at the same time, each with ``segments`` parallel segment scans run by
    ``workers`` threads per table. Differences found by the scan are re-read with consistent reads
    from both sides up to ``recheck_rounds`` times (``recheck_delay`` seconds between rounds; the first
    round runs at once); only differences that persist through every round are counted, classified by
    the last reading. ``recheck_rounds=0`` reports the scan's findings as they are.

    ``progress(stage, n)`` (optional) is called one call at a time, possibly from worker threads:
    ``("source", items scanned so far)``, ``("target", items scanned so far)``, then
    ``("recheck", candidates left)`` before each round and once at the end. ``page_size`` sets the
    scan's ``Limit`` (default: DynamoDB's 1 MB pages).
    """
    if not key_names:
        raise ValueError("key_names must name the table's key attributes")
    if segments < 1 or workers < 1 or recheck_rounds < 0 or examples < 0:
        raise ValueError("segments and workers must be >= 1; recheck_rounds and examples >= 0")
    names = list(key_names)
    counter = _Counter(progress)
    source, target = _scan_both(
        source_client, source_table, target_client, target_table, names, segments, workers, page_size, counter
    )
    candidates: dict[bytes, str] = {}
    target_digests = target.digests
    for key, digest in source.digests.items():
        other = target_digests.get(key)
        if other is None:
            candidates[key] = MISSING
        elif other != digest:
            candidates[key] = DIFFERENT
    source_digests = source.digests
    for key in target_digests:
        if key not in source_digests:
            candidates[key] = EXTRANEOUS

    def raw_for(key: bytes) -> Key:
        raw = source.raw_keys.get(key) or target.raw_keys.get(key)
        return raw if raw is not None else decode_key(key, names)

    if candidates and recheck_rounds:
        candidates = _recheck(
            candidates,
            source_client,
            source_table,
            target_client,
            target_table,
            names,
            raw_for,
            recheck_rounds,
            recheck_delay,
            workers,
            counter,
        )

    result = VerifyResult(source_items=len(source.digests), target_items=len(target.digests))
    by_kind: dict[str, list[Key]] = {kind: [] for kind in KINDS}
    for key in sorted(candidates):
        raw = raw_for(key)
        by_kind[candidates[key]].append(raw)
        result.differing_keys.append(raw)
    result.missing = len(by_kind[MISSING])
    result.different = len(by_kind[DIFFERENT])
    result.extraneous = len(by_kind[EXTRANEOUS])
    result.missing_examples = [key_to_json(key) for key in by_kind[MISSING][:examples]]
    result.different_examples = [key_to_json(key) for key in by_kind[DIFFERENT][:examples]]
    result.extraneous_examples = [key_to_json(key) for key in by_kind[EXTRANEOUS][:examples]]
    return result


def repair(
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    keys: Iterable[Mapping[str, AttributeValue]],
    *,
    workers: int = 8,
    progress: Progress | None = None,
) -> RepairResult:
    """Make the target match the CURRENT source for each key.

    Each key's source item is read with a consistent read at repair time: present → put into the
    target as read; absent → deleted from the target. No older image is ever written. Keys are boto3
    keys (``B`` as bytes; :func:`key_from_json` converts JSON ones); duplicates are repaired once.
    ``progress("repair", keys done)`` is reported as chunks finish.

    A source write that lands between the read and the target write is the replicator's to carry;
    verify again afterwards (``verify_and_repair`` does).
    """
    unique: dict[bytes, Key] = {}
    for key in keys:
        names = sorted(key)
        unique.setdefault(canonical_key(key, names)[0], {name: dict(key[name]) for name in names})
    ordered = [unique[key] for key in sorted(unique)]
    counter = _Counter(progress)

    def repair_chunk(chunk: Sequence[Key]) -> tuple[int, int]:
        names = sorted(chunk[0])
        current = {canonical_key(item, names)[0]: item for item in batch_get(source_client, source_table, chunk)}
        requests: list[dict[str, Any]] = []
        written = deleted = 0
        for key in chunk:
            item = current.get(canonical_key(key, sorted(key))[0])
            if item is not None:
                requests.append({"PutRequest": {"Item": item}})
                written += 1
            else:
                requests.append({"DeleteRequest": {"Key": key}})
                deleted += 1
        for batch in _chunks(requests, BATCH_WRITE_LIMIT):
            batch_write(target_client, target_table, batch)
        counter.add("repair", len(chunk))
        return written, deleted

    result = RepairResult()
    if not ordered:
        return result
    # Keys of one chunk share their attribute names (BatchGetItem needs one key schema per table).
    with ThreadPoolExecutor(workers, "verify-repair") as executor:
        calls = [functools.partial(repair_chunk, chunk) for chunk in _chunks(ordered, BATCH_GET_LIMIT)]
        for written, deleted in _run_all(executor, calls):
            result.written += written
            result.deleted += deleted
    return result


def verify_and_repair(
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    *,
    key_names: Sequence[str],
    **options: Any,
) -> VerifyRepairResult:
    """Verify; if not clean, repair every differing key and verify again.

    ``options`` go to :func:`verify_tables` (``workers`` also to :func:`repair`).
    """
    before = verify_tables(source_client, source_table, target_client, target_table, key_names=key_names, **options)
    if before.clean:
        return VerifyRepairResult(before, None, None)
    fixed = repair(
        source_client,
        source_table,
        target_client,
        target_table,
        before.differing_keys,
        workers=options.get("workers", 8),
        progress=options.get("progress"),
    )
    after = verify_tables(source_client, source_table, target_client, target_table, key_names=key_names, **options)
    return VerifyRepairResult(before, fixed, after)
