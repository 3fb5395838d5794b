"""The scan engine: verify two DynamoDB tables (in different accounts) by scanning both completely.

Both tables are scanned at once with parallel segmented scans, keeping per side only a map
*canonical key → 16-byte digest of the canonical item* (:mod:`migrator.aws.codec`): memory stays at
roughly a hundred bytes per item, whatever the item size, so millions of items fit.

Differences found by the scan are *candidates*: a replicator still catching up (or a write that landed
while the scan ran) produces them too. Each candidate is re-read from BOTH sides with consistent
``BatchGetItem`` reads, up to ``recheck_rounds`` times with ``recheck_delay`` between rounds; only what
persists through every round is reported.

Clients are low-level boto3 DynamoDB clients, shared between worker threads (which boto3 supports).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ...aws.codec import Key, canonical_key, decode_key, item_digest, key_to_json
from ...aws.dynamodb import DEFAULT_RETRY, MAX_BATCH_GET, RetryPolicy, chunks
from .engine import DIFFERENT, EXTRANEOUS, KINDS, MISSING, Counter, Progress, VerifyResult, read_items, run_all


@dataclass(frozen=True)
class ScanEngine:
    """:class:`.engine.VerifyEngine` by parallel segmented scans of both tables (the default engine)."""

    segments: int = 8
    workers: int = 8
    recheck_rounds: int = 3
    recheck_delay: float = 1.0
    examples: int = 5
    page_size: int | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    name: str = "scan"

    def compare(
        self,
        source_client: Any,
        source_table: str,
        target_client: Any,
        target_table: str,
        *,
        key_names: Sequence[str],
        progress: Progress | None = None,
    ) -> VerifyResult:
        return verify_tables(
            source_client,
            source_table,
            target_client,
            target_table,
            key_names=key_names,
            segments=self.segments,
            workers=self.workers,
            recheck_rounds=self.recheck_rounds,
            recheck_delay=self.recheck_delay,
            examples=self.examples,
            progress=progress,
            page_size=self.page_size,
            retry=self.retry,
        )


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
    counter: Counter,
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
    counter: Counter,
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
    retry: RetryPolicy,
) -> list[Callable[[], dict[bytes, bytes]]]:
    """Calls that each read one chunk of ``keys`` consistently and return canonical key → digest."""

    def read(chunk: Sequence[bytes]) -> dict[bytes, bytes]:
        items = read_items(client, table, [raw_for(key) for key in chunk], retry=retry)
        return {canonical_key(item, key_names)[0]: item_digest(item) for item in items}

    return [functools.partial(read, chunk) for chunk in chunks(keys, MAX_BATCH_GET)]


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
    counter: Counter,
    retry: RetryPolicy,
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
            source_calls = _read_digests(source_client, source_table, keys, raw_for, key_names, retry)
            target_calls = _read_digests(target_client, target_table, keys, raw_for, key_names, retry)
            results = run_all(executor, [*source_calls, *target_calls])
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
    retry: RetryPolicy = DEFAULT_RETRY,
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
    scan's ``Limit`` (default: DynamoDB's 1 MB pages); ``retry`` governs the re-check's reads.
    """
    if not key_names:
        raise ValueError("key_names must name the table's key attributes")
    if segments < 1 or workers < 1 or recheck_rounds < 0 or examples < 0:
        raise ValueError("segments and workers must be >= 1; recheck_rounds and examples >= 0")
    names = list(key_names)
    counter = Counter(progress)
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
            retry,
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
