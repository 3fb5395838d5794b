"""What every verify engine returns, and the plumbing the engines share.

A verify engine compares a source table with a target table and returns a :class:`VerifyResult`:
counts of missing, different and extraneous items, example keys, and every differing key for
:func:`migrator.dataplane.verify.repair.repair`. The first engine is the scan engine
(:mod:`.scan`: parallel segmented scans of both tables, re-checked with consistent reads). Another
engine (one that compares exports, say) is one more module implementing :class:`VerifyEngine`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...aws.codec import AttributeValue, JsonKey, Key
from ...aws.dynamodb import DEFAULT_RETRY, RetryPolicy, get_batch

Progress = Callable[[str, int], None]
"""``progress(stage, n)``: a stage (``source``, ``target``, ``recheck``, ``repair``) and how far it got."""

MISSING = "missing"
DIFFERENT = "different"
EXTRANEOUS = "extraneous"
KINDS = (MISSING, DIFFERENT, EXTRANEOUS)


class VerifyEngine(Protocol):
    """Compares two tables. ``key_names`` are the table's key attributes, hash key first."""

    @property
    def name(self) -> str: ...

    def compare(
        self,
        source_client: Any,
        source_table: str,
        target_client: Any,
        target_table: str,
        *,
        key_names: Sequence[str],
        progress: Progress | None = None,
    ) -> VerifyResult: ...


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
# Plumbing shared by the engines and repair
# --------------------------------------------------------------------------------------------------


class Counter:
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


def run_all(executor: ThreadPoolExecutor, calls: Iterable[Callable[[], Any]]) -> list[Any]:
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


def read_items(
    client: Any, table: str, keys: Sequence[Mapping[str, AttributeValue]], *, retry: RetryPolicy = DEFAULT_RETRY
) -> list[dict[str, Any]]:
    """Consistent reads of up to 100 distinct keys; raises when the retries leave any unread."""
    outcome = get_batch(client, table, keys, consistent=True, retry=retry)
    if outcome.unprocessed:
        raise RuntimeError(
            f"BatchGetItem on {table} left {len(outcome.unprocessed)} keys unprocessed after "
            f"{outcome.calls} attempts ({outcome.error})"
        )
    return outcome.items
