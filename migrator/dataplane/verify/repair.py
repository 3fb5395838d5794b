"""Repair: make the target match the CURRENT source for each key; verify, repair, verify again.

``repair`` writes the current source item (consistent read) into the target, or deletes the target
item when the source no longer has it. It never writes an image it did not just read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...aws.codec import AttributeValue, Key, canonical_key
from ...aws.dynamodb import DEFAULT_RETRY, MAX_BATCH_GET, MAX_BATCH_WRITE, RetryPolicy, chunks, write_batch
from .engine import Counter, Progress, RepairResult, VerifyRepairResult, read_items, run_all
from .scan import verify_tables


def repair(
    source_client: Any,
    source_table: str,
    target_client: Any,
    target_table: str,
    keys: Iterable[Mapping[str, AttributeValue]],
    *,
    workers: int = 8,
    progress: Progress | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
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
    counter = Counter(progress)

    def repair_chunk(chunk: Sequence[Key]) -> tuple[int, int]:
        names = sorted(chunk[0])
        current = {
            canonical_key(item, names)[0]: item for item in read_items(source_client, source_table, chunk, retry=retry)
        }
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
        for batch in chunks(requests, MAX_BATCH_WRITE):
            outcome = write_batch(target_client, target_table, batch, key_names=names, retry=retry)
            if outcome.failed:
                first = outcome.failed[0]
                raise RuntimeError(
                    f"repair could not write {len(outcome.failed)} item(s) into {target_table} "
                    f"({first.code}: {first.message})"
                )
        counter.add("repair", len(chunk))
        return written, deleted

    result = RepairResult()
    if not ordered:
        return result
    # Keys of one chunk share their attribute names (BatchGetItem needs one key schema per table).
    with ThreadPoolExecutor(workers, "verify-repair") as executor:
        calls = [functools.partial(repair_chunk, chunk) for chunk in chunks(ordered, MAX_BATCH_GET)]
        for written, deleted in run_all(executor, calls):
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
        retry=options.get("retry", DEFAULT_RETRY),
    )
    after = verify_tables(source_client, source_table, target_client, target_table, key_names=key_names, **options)
    return VerifyRepairResult(before, fixed, after)
