"""DynamoDB batch writes and reads with retries: the one implementation every part of migrator uses.

It lives in the replicator package because the Lambda zip holds that package alone (standard library
and botocore only); :mod:`migrator.aws.dynamodb` and :mod:`migrator.aws.errors` re-export it for the
rest of migrator (docs/architecture.md, "One AWS layer").

* **One error classification.** :func:`is_retryable` is true for throttling, 5xx and connection
  errors; everything else is the service refusing the request itself.
* **One retry policy.** :class:`RetryPolicy`: exponential backoff with full jitter, a maximum number
  of attempts, and a safety margin kept free before a deadline (``time_left()``, the Lambda's remaining
  time). A retry is not started when its delay would eat into the margin.
* **One batch write.** :func:`write_batch` sends up to 25 requests, retries ``UnprocessedItems``,
  throttling and 5xx, and isolates a request the service refuses by writing the others one by one.
  It never raises for a write that did not land: the outcome says which requests landed and which
  failed, with the error code and whether a later retry could succeed.
* **One batch read.** :func:`get_batch` reads up to 100 keys, retrying ``UnprocessedKeys``,
  throttling and 5xx under the same policy; what is still unread when the policy gives up is
  returned, not dropped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

#: ``BatchWriteItem`` accepts at most this many requests per call.
MAX_BATCH_WRITE = 25
#: ``BatchGetItem`` accepts at most this many keys per call.
MAX_BATCH_GET = 100

#: Error codes that mean "try again later", on top of every HTTP status of 500 and above.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def error_code(error: BaseException) -> str:
    """The service's error code of a ``ClientError`` (``""`` when it has none), else the exception's name."""
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def is_retryable(error: BaseException) -> bool:
    """Throttling, a 5xx answer or a connection failure: the same request may succeed later."""
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code in RETRYABLE_ERROR_CODES or status >= 500
    return isinstance(error, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError)


def describe_error(error: BaseException) -> tuple[str, str]:
    """``(code, message)`` of an error, for reports (the code falls back to the HTTP status)."""
    if isinstance(error, botocore.exceptions.ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        return code, str(err.get("Message", ""))[:500]
    return type(error).__name__, str(error)[:500]


# --------------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How failed calls are retried.

    The delay before retry ``n`` (1-based) is ``rand() * min(max_delay, base_delay * 2**(n-1))``
    ("full jitter"). ``call_timeout_s`` is the longest one call can take (its client's connect and read
    timeouts, one attempt per call). No call is started unless it would end with ``safety_margin_s``
    still left: a retry waits only when ``time_left() - delay - call_timeout_s`` stays above the margin.
    """

    max_attempts: int = 30
    base_delay: float = 0.05
    max_delay: float = 5.0
    safety_margin_s: float = 5.0
    call_timeout_s: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** max(0, attempt - 1)))
        return self.rand() * ceiling


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class _Clock:
    time_left: Callable[[], float] | None
    retry: RetryPolicy

    def short(self, delay: float = 0.0) -> bool:
        """True when a call started after ``delay`` might not end before the safety margin."""
        if self.time_left is None:
            return False
        return self.time_left() - delay - self.retry.call_timeout_s < self.retry.safety_margin_s


# --------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------


def key_id(keys: Mapping[str, Any]) -> Hashable:
    """What tells two primary keys apart, order-free, for matching requests to answers.

    Binary values must be ``bytes`` on both sides (the requests migrator builds hold bytes, and so do
    botocore's answers). A member that cannot be hashed (no key DynamoDB accepts) is told apart by its
    ``repr`` all the same. This is an identity for one batch, not a canonical form: the canonical key
    codec is :mod:`migrator.aws.codec`.
    """
    try:
        return tuple(sorted((name, tag, inner) for name, value in keys.items() for tag, inner in value.items()))
    except TypeError:
        return repr(sorted((str(name), repr(value)) for name, value in keys.items()))


def request_key(request: Mapping[str, Any], key_names: Sequence[str] | frozenset[str]) -> Hashable | None:
    """The :func:`key_id` of a ``PutRequest`` or ``DeleteRequest`` (None for anything else)."""
    if "PutRequest" in request:
        item = request["PutRequest"]["Item"]
        return key_id({name: item[name] for name in key_names if name in item})
    if "DeleteRequest" in request:
        return key_id(dict(request["DeleteRequest"]["Key"]))
    return None


# --------------------------------------------------------------------------------------------------
# Batch write
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteFailure:
    index: int  # position of the request in the call's ``requests``
    code: str  # the service's error code, or ``Deadline`` / ``UnprocessedItems``
    message: str
    retryable: bool  # False: the service refused the write itself (it would fail again)


@dataclass
class WriteOutcome:
    landed: list[int] = field(default_factory=list)  # positions of the requests that landed
    failed: list[WriteFailure] = field(default_factory=list)
    retries: int = 0  # calls repeated after throttling, 5xx or UnprocessedItems
    calls: int = 0  # BatchWriteItem calls made

    def merge(self, other: WriteOutcome) -> None:
        self.landed += other.landed
        self.failed += other.failed
        self.retries += other.retries
        self.calls += other.calls


def write_batch(
    client: Any,
    table: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    key_names: Sequence[str] | frozenset[str],
    retry: RetryPolicy = DEFAULT_RETRY,
    time_left: Callable[[], float] | None = None,
    fatal: Callable[[BaseException], bool] | None = None,
) -> WriteOutcome:
    """``BatchWriteItem`` of up to 25 requests (no key twice), until each lands or fails.

    ``UnprocessedItems``, throttling and 5xx are retried under ``retry`` and ``time_left``. A call the
    service refuses as a whole (not retryable) is split: each request is written alone, so one bad item
    fails alone. ``fatal(error)`` (optional) names the errors that are not about any one item (access
    denied, a missing table): those are raised at once instead of being isolated.
    """
    if len(requests) > MAX_BATCH_WRITE:
        raise ValueError(f"at most {MAX_BATCH_WRITE} requests per BatchWriteItem")
    return _write(client, table, list(enumerate(requests)), frozenset(key_names), _Clock(time_left, retry), fatal)


def _write(
    client: Any,
    table: str,
    pending: list[tuple[int, Mapping[str, Any]]],
    key_names: frozenset[str],
    clock: _Clock,
    fatal: Callable[[BaseException], bool] | None,
) -> WriteOutcome:
    out = WriteOutcome()
    attempt = 0
    while pending:
        if clock.short():
            out.failed += [WriteFailure(i, "Deadline", "time ran short before the write", True) for i, _ in pending]
            return out
        out.calls += 1
        try:
            response = client.batch_write_item(RequestItems={table: [r for _, r in pending]})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            if fatal is not None and fatal(error):
                raise
            code, message = describe_error(error)
            if not is_retryable(error):
                if len(pending) == 1:
                    out.failed.append(WriteFailure(pending[0][0], code, message, False))
                    return out
                # One bad item refuses the whole call: write each alone to find it.
                for one in pending:
                    out.merge(_write(client, table, [one], key_names, clock, fatal))
                return out
        else:
            unprocessed = response.get("UnprocessedItems", {}).get(table) or []
            if not unprocessed:
                out.landed += [i for i, _ in pending]
                return out
            left = {request_key(r, key_names) for r in unprocessed}
            still = [(i, r) for i, r in pending if None not in left and request_key(r, key_names) in left]
            if len(still) == len(unprocessed):
                out.landed += [i for i, r in pending if request_key(r, key_names) not in left]
                pending = still
            # else: the answer cannot be matched to the requests — send them all again (idempotent).
            code, message = "UnprocessedItems", f"{len(pending)} unprocessed"
        attempt += 1
        if attempt >= clock.retry.max_attempts:
            out.failed += [
                WriteFailure(i, code, f"gave up after {attempt} attempts: {message}", True) for i, _ in pending
            ]
            return out
        delay = clock.retry.delay(attempt)
        if clock.short(delay):
            out.failed += [
                WriteFailure(i, "Deadline", f"time ran short while retrying {code}: {message}", True)
                for i, _ in pending
            ]
            return out
        out.retries += 1
        if delay > 0:
            clock.retry.sleep(delay)
    return out


# --------------------------------------------------------------------------------------------------
# Batch read
# --------------------------------------------------------------------------------------------------


@dataclass
class GetOutcome:
    items: list[dict[str, Any]] = field(default_factory=list)  # the items found (absent keys: no item)
    unprocessed: list[dict[str, Any]] = field(default_factory=list)  # keys still unread when retries ran out
    error: str | None = None  # why they are unread (``UnprocessedKeys`` or the last retryable error's code)
    retries: int = 0
    calls: int = 0


def get_batch(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    consistent: bool = True,
    retry: RetryPolicy = DEFAULT_RETRY,
    time_left: Callable[[], float] | None = None,
) -> GetOutcome:
    """``BatchGetItem`` of up to 100 distinct keys; retries ``UnprocessedKeys``, throttling and 5xx.

    Other errors (a malformed key, access denied) are raised. Keys still unread when ``retry`` or
    ``time_left`` gives up are returned in :attr:`GetOutcome.unprocessed`.
    """
    if len(keys) > MAX_BATCH_GET:
        raise ValueError(f"at most {MAX_BATCH_GET} keys per BatchGetItem")
    clock = _Clock(time_left, retry)
    out = GetOutcome()
    pending: list[dict[str, Any]] = [dict(k) for k in keys]
    attempt = 0
    while pending:
        if clock.short():
            out.unprocessed, out.error = pending, "Deadline"
            return out
        out.calls += 1
        try:
            response = client.batch_get_item(RequestItems={table: {"Keys": pending, "ConsistentRead": consistent}})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            if not is_retryable(error):
                raise
            code = error_code(error)
        else:
            out.items += response.get("Responses", {}).get(table, [])
            pending = list((response.get("UnprocessedKeys") or {}).get(table, {}).get("Keys") or [])
            if not pending:
                return out
            code = "UnprocessedKeys"
        attempt += 1
        delay = clock.retry.delay(attempt)
        if attempt >= clock.retry.max_attempts or clock.short(delay):
            out.unprocessed, out.error = pending, code
            return out
        out.retries += 1
        if delay > 0:
            clock.retry.sleep(delay)
    return out
