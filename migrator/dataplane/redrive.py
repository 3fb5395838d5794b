"""`migrator redrive`: fix in the target every key of a batch the replicator gave up on.

The replicator's event source mapping sends a batch that exhausted its retries to an on-failure
destination: an S3 bucket in the source account (``config.failure_bucket_name``). Redrive reads those
objects, works out the keys they name and, for each key, makes the target match the CURRENT source
item (docs/architecture.md, invariant 5): a consistent read of the source, then the item written raw into the
target, or the key deleted from the target when the source no longer has it. No image carried by a
failure record is ever written — it may be older than what the source holds now.

The object format (checked against the AWS Lambda Developer Guide, "Retain discarded records for a
DynamoDB event source in Lambda", https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html):
each failed batch becomes one object, named
``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>``, holding one JSON
invocation record::

    {"requestContext": {"requestId": …, "functionArn": …, "condition": "RetryAttemptsExhausted",
                        "approximateInvokeCount": 3},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "version": "1.0",
     "timestamp": "2019-11-14T00:13:49.717Z",
     "DDBStreamBatchInfo": {"shardId": …, "startSequenceNumber": …, "endSequenceNumber": …,
                            "approximateArrivalOfFirstRecord": …, "approximateArrivalOfLastRecord": …,
                            "batchSize": 1, "streamArn": "arn:aws:dynamodb:…:table/T/stream/…"},
     "payload": "{\\"Records\\": […]}"}

"For Amazon S3 destinations, Lambda also sends the entire invocation record along with the
metadata": ``payload`` is the event the function was invoked with. The guide's example shows only the
metadata; the ``aws_lambda_events`` crate models ``payload`` as a JSON *string*, LocalStack's
emulation writes it as an object — both are accepted. SQS/SNS records (and any object without a
usable payload) carry only the shard and sequence range: the keys are then recovered by reading that
range of the stream again (``GetShardIterator`` ``AT_SEQUENCE_NUMBER`` + ``GetRecords``). A range the
stream has already trimmed (24 h retention) cannot be recovered by key: such objects are reported as
unrecoverable and left in place, and ``migrator verify --repair`` is the way to fix the target.

A processed object is moved under ``redriven/<original key>`` (copy, then delete), so a second
redrive finds nothing; an object with any key that could not be fixed stays where it is.

Race with the live replicator: between the source read and the target write, the source may change
and the replicator may already have written the newer image, which the redrive write would then
overwrite with the older one. So after writing, every key is read from the source again; a key whose
item changed meanwhile is done again (up to :data:`MAX_CONFIRM_ROUNDS` times). A change made after
that confirming read reaches the target through the replicator after the redrive write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from ..aws.codec import Key, canonical_key, decode_key, item_digest, key_to_json
from ..aws.dynamodb import (
    DEFAULT_RETRY,
    MAX_BATCH_GET,
    MAX_BATCH_WRITE,
    RetryPolicy,
    chunks,
    get_batch,
    table_key_names,
    write_batch,
)
from ..aws.errors import error_code, is_retryable
from ..aws.s3 import REDRIVEN_PREFIX, failure_object_keys
from ..clock import iso, now
from ..errors import MigratorError

if TYPE_CHECKING:
    from ..context import MigrationContext
    from .direction import Direction

MAX_CONFIRM_ROUNDS = 5
MAX_EMPTY_READS = 5  # consecutive empty GetRecords answers before a range counts as incomplete
MAX_EXAMPLES = 20
#: Stream errors that mean the range is gone for good (trimmed, or the stream itself is gone).
GONE_CODES = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException"})


class Unrecoverable(Exception):
    """The keys of a failure record cannot be known; ``str()`` says why."""


@dataclass
class RedriveResult:
    objects: int = 0  # failure records found (outside redriven/)
    keys: int = 0  # distinct keys they name
    written: int = 0  # keys put into the target from the current source item (would be, in a dry run)
    deleted: int = 0  # keys deleted from the target because the source has no item (would be, in a dry run)
    unrecoverable: int = 0  # objects whose keys could not be recovered
    failed: int = 0  # keys that could not be fixed
    moved: int = 0  # objects moved under redriven/
    dry_run: bool = False
    direction: str = "forward"  # the replicator whose failure records these were
    bucket: str = ""  # its failure bucket
    unrecoverable_objects: list[dict[str, str]] = field(default_factory=list)  # {"object", "reason"}, the first 20
    failed_keys: list[dict[str, Any]] = field(default_factory=list)  # {"key", "reason"}, the first 20

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unrecoverable == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "keys": self.keys,
            "written": self.written,
            "deleted": self.deleted,
            "unrecoverable": self.unrecoverable,
            "failed": self.failed,
            "moved": self.moved,
            "dry_run": self.dry_run,
            "direction": self.direction,
            "bucket": self.bucket,
            "unrecoverable_objects": list(self.unrecoverable_objects),
            "failed_keys": list(self.failed_keys),
        }


# --------------------------------------------------------------------------------------------------
# Failure records → keys
# --------------------------------------------------------------------------------------------------


def payload_records(record: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The stream records of the invocation record's ``payload`` (a JSON string or an object).

    ``None`` when there is no payload or it is not an event whose records all carry ``dynamodb.Keys``.
    """
    payload = record.get("payload")
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    if not isinstance(payload, Mapping):
        return None
    records = payload.get("Records")
    if not isinstance(records, list):
        return None
    for r in records:
        if not isinstance(r, Mapping) or not isinstance(r.get("dynamodb"), Mapping):
            return None
        if not isinstance(r["dynamodb"].get("Keys"), Mapping):
            return None
    return records


def stream_table(stream_arn: str) -> tuple[str, str]:
    """``(account id, table name)`` of a DynamoDB stream ARN."""
    parts = stream_arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("table/") or "/stream/" not in parts[5]:
        raise Unrecoverable(f"not a DynamoDB stream ARN: {stream_arn!r}")
    return parts[4], parts[5][len("table/") :].split("/stream/", 1)[0]


def keys_from_stream(streams: Any, info: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``Keys`` of every record of ``info``'s range, read again from the stream.

    Raises :class:`Unrecoverable` when the range is trimmed, the stream is gone, or the range could
    not be read to its end.
    """
    try:
        stream_arn = str(info["streamArn"])
        shard_id = str(info["shardId"])
        start = str(info["startSequenceNumber"])
        end = int(info["endSequenceNumber"])
    except (KeyError, TypeError, ValueError):
        raise Unrecoverable("DDBStreamBatchInfo lacks streamArn, shardId or a sequence range") from None
    expected = info.get("batchSize")
    keys: list[Mapping[str, Any]] = []
    try:
        iterator: str | None = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=start
        )["ShardIterator"]
        empty = 0
        complete = False
        while iterator and not complete:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = response.get("Records", [])
            for r in records:
                if int(r["dynamodb"]["SequenceNumber"]) > end:
                    complete = True
                    break
                keys.append(r["dynamodb"]["Keys"])
                if int(r["dynamodb"]["SequenceNumber"]) == end:
                    complete = True
                    break
            empty = 0 if records else empty + 1
            if empty >= MAX_EMPTY_READS:
                break
            iterator = response.get("NextShardIterator")
        complete = complete or iterator is None  # a closed shard read to its end holds the whole range
    except ParamValidationError:
        raise Unrecoverable("DDBStreamBatchInfo names a malformed shard or sequence range") from None
    except ClientError as err:
        code = error_code(err) or "Unknown"
        if code in GONE_CODES:
            raise Unrecoverable(f"the stream range is no longer readable ({code}): trimmed past retention") from None
        raise Unrecoverable(f"the stream range could not be read ({code})") from None
    if not complete or (isinstance(expected, int) and len(keys) < expected):
        raise Unrecoverable(f"the stream range could be read only in part ({len(keys)} of {expected} records)")
    return keys


def record_keys(record: Any, streams: Any, source_account: str, source_table: str) -> list[Mapping[str, Any]]:
    """The keys named by one invocation record: from its payload, else from the stream range."""
    if not isinstance(record, Mapping):
        raise Unrecoverable("not a JSON object")
    info = record.get("DDBStreamBatchInfo")
    if isinstance(info, Mapping) and info.get("streamArn"):
        account, table = stream_table(str(info["streamArn"]))
        if (account, table) != (source_account, source_table):
            raise Unrecoverable(f"it comes from another table's stream ({info['streamArn']})")
    records = payload_records(record)
    if records is not None:
        return [r["dynamodb"]["Keys"] for r in records]
    if not isinstance(info, Mapping):
        raise Unrecoverable("neither a payload nor DDBStreamBatchInfo")
    return keys_from_stream(streams, info)


# --------------------------------------------------------------------------------------------------
# Keys → target
# --------------------------------------------------------------------------------------------------


def _about_the_key(err: BaseException) -> bool:
    """An error one key's request can cause (a malformed item, or throttling that outlasted the retries);
    anything else (access denied, a missing table) is the same for every key, so it is said once."""
    return (isinstance(err, ClientError) and error_code(err) == "ValidationException") or is_retryable(err)


class _Fixer:
    """Reads the current source item of each key and makes the target match it."""

    def __init__(
        self,
        source: Any,
        source_table: str,
        target: Any,
        target_table: str,
        key_names: list[str],
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.source = source
        self.source_table = source_table
        self.target = target
        self.target_table = target_table
        self.key_names = key_names
        self.retry = retry
        self.failed: dict[bytes, str] = {}

    def _per_key(self, canon: bytes, call: Callable[..., Any], **kwargs: Any) -> Any:
        """One single-item call; its failure fails the key (unless it is not about the key at all)."""
        try:
            return call(**kwargs)
        except ClientError as err:
            if not _about_the_key(err):
                raise  # access denied, table missing, …: the same for every key, so say it once
            self.failed[canon] = f"{err.operation_name}: {error_code(err) or 'Unknown'}"
            return None

    def read(self, keys: Mapping[bytes, Key]) -> dict[bytes, dict[str, Any] | None]:
        """Consistent reads of the current source items (``None``: no item), failed keys left out."""
        current: dict[bytes, dict[str, Any] | None] = {}
        for chunk in chunks(list(keys.items()), MAX_BATCH_GET):
            try:
                outcome = get_batch(self.source, self.source_table, [k for _, k in chunk], retry=self.retry)
            except ClientError as err:
                if not _about_the_key(err):
                    raise
                found: list[dict[str, Any]] = []
                unread = {canon for canon, _ in chunk}  # isolate the bad key below
            else:
                found = outcome.items
                unread = {canonical_key(k, self.key_names)[0] for k in outcome.unprocessed}
            answered = set()
            for item in found:
                canon = canonical_key(item, self.key_names)[0]
                current[canon] = item
                answered.add(canon)
            for canon, key in chunk:
                if canon in answered:
                    continue
                if canon not in unread:
                    current[canon] = None  # answered, and absent from the source
                    continue
                response = self._per_key(
                    canon, self.source.get_item, TableName=self.source_table, Key=key, ConsistentRead=True
                )
                if canon not in self.failed:
                    current[canon] = response.get("Item")
        return current

    def write(self, keys: Mapping[bytes, Key], current: Mapping[bytes, dict[str, Any] | None]) -> set[bytes]:
        """Put each present item raw into the target, delete each absent one; the keys that landed."""
        requests: list[tuple[bytes, dict[str, Any]]] = []
        for canon, item in current.items():
            if item is not None:
                requests.append((canon, {"PutRequest": {"Item": item}}))
            else:
                requests.append((canon, {"DeleteRequest": {"Key": keys[canon]}}))
        landed: set[bytes] = set()
        for chunk in chunks(requests, MAX_BATCH_WRITE):
            outcome = write_batch(
                self.target,
                self.target_table,
                [r for _, r in chunk],
                key_names=self.key_names,
                retry=self.retry,
                fatal=lambda err: not _about_the_key(err),
            )
            landed |= {chunk[i][0] for i in outcome.landed}
            for f in outcome.failed:
                self.failed[chunk[f.index][0]] = f"BatchWriteItem: {f.code}"
        return landed

    def fix(self, keys: Mapping[bytes, Key], *, dry_run: bool) -> dict[bytes, bool]:
        """Make the target match the current source for every key: key → True (put) / False (delete).

        Failed keys are in :attr:`failed` and not in the answer.
        """
        done: dict[bytes, bool] = {}
        pending = dict(keys)
        for _ in range(MAX_CONFIRM_ROUNDS):
            current = self.read(pending)
            if dry_run:
                return {canon: item is not None for canon, item in current.items()}
            landed = self.write(pending, current)
            confirm = self.read({canon: pending[canon] for canon in landed})
            changed: dict[bytes, Key] = {}
            for canon in landed:
                if canon not in confirm:
                    continue  # the confirming read failed: already in self.failed
                before, after = current[canon], confirm[canon]
                if (before is None) != (after is None) or (
                    before is not None and after is not None and item_digest(before) != item_digest(after)
                ):
                    changed[canon] = pending[canon]
                else:
                    done[canon] = after is not None
            if not changed:
                return done
            pending = changed
        for canon in pending:
            self.failed[canon] = f"the source item kept changing through {MAX_CONFIRM_ROUNDS} rounds"
        return done


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def redrive(ctx: MigrationContext, *, dry_run: bool = False) -> RedriveResult:
    """Fix every key named by the failure records of the direction that runs now (forward before a cutover,
    reverse after it); move the fixed records aside (under the migration's lock; a dry run changes nothing
    and takes none)."""
    from .direction import forward, reverse
    from .switch import recorded_direction

    d = reverse(ctx) if recorded_direction(ctx) == "reverse" else forward(ctx)
    if dry_run:
        return _redrive(ctx, d, dry_run=True)
    with ctx.lock.held("migrator redrive"):
        return _redrive(ctx, d, dry_run=False)


def redrive_direction(ctx: MigrationContext, d: Direction) -> RedriveResult:
    """Redrive ``d``'s failure records, for a caller that holds the migration lock already."""
    return _redrive(ctx, d, dry_run=False)


def _redrive(ctx: MigrationContext, d: Direction, *, dry_run: bool) -> RedriveResult:
    reads = d.session(ctx)
    s3 = reads.client("s3")
    source_ddb = reads.client("dynamodb")
    bucket = d.failure_bucket
    result = RedriveResult(dry_run=dry_run, direction=d.name, bucket=bucket)
    try:
        names = failure_object_keys(s3, bucket)
    except ClientError as err:
        if error_code(err) == "NoSuchBucket":
            from ..phases import EXPORT, FALLBACK

            deployed = EXPORT if d.name == "forward" else FALLBACK
            raise MigratorError(
                f"the failure bucket {bucket} of the {d.name} replicator does not exist in the {d.reads} account "
                f"{ctx.account_id(d.reads)}; it is created by phase {deployed.number}, "
                f"so run phase {deployed.number} first"
            ) from None
        raise
    result.objects = len(names)
    if not names:
        return _finish(ctx, result)

    key_names = table_key_names(source_ddb, d.reads_table)
    streams = reads.client("dynamodbstreams")
    all_keys: dict[bytes, Key] = {}
    object_keys: dict[str, set[bytes]] = {}
    for name in names:
        body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
        try:
            try:
                record = json.loads(body)
            except ValueError:
                raise Unrecoverable("not JSON") from None
            raw_keys = record_keys(record, streams, ctx.account_id(d.reads), d.reads_table)
            mine: set[bytes] = set()
            for raw in raw_keys:
                if set(raw) != set(key_names):
                    raise Unrecoverable(f"a record's Keys {sorted(raw)} do not match the table's key {key_names}")
                try:
                    canon = canonical_key(raw, key_names)[0]
                except (ValueError, TypeError) as err:
                    raise Unrecoverable(f"a record's Keys are malformed ({err})") from None
                all_keys.setdefault(canon, decode_key(canon, key_names))
                mine.add(canon)
        except Unrecoverable as err:
            result.unrecoverable += 1
            if len(result.unrecoverable_objects) < MAX_EXAMPLES:
                result.unrecoverable_objects.append({"object": name, "reason": str(err)})
            continue
        object_keys[name] = mine
    result.keys = len(all_keys)

    fixer = _Fixer(
        source_ddb, d.reads_table, d.write_session(ctx).client("dynamodb"), d.writes_table, key_names, ctx.retry
    )
    done = fixer.fix(all_keys, dry_run=dry_run)
    result.written = sum(1 for put in done.values() if put)
    result.deleted = len(done) - result.written
    result.failed = len(fixer.failed)
    result.failed_keys = [
        {"key": key_to_json(all_keys[canon]), "reason": reason}
        for canon, reason in sorted(fixer.failed.items())[:MAX_EXAMPLES]
    ]

    if not dry_run:
        for name, mine in object_keys.items():
            if mine.isdisjoint(fixer.failed):
                s3.copy_object(Bucket=bucket, Key=REDRIVEN_PREFIX + name, CopySource={"Bucket": bucket, "Key": name})
                s3.delete_object(Bucket=bucket, Key=name)
                result.moved += 1
    return _finish(ctx, result)


def _finish(ctx: MigrationContext, result: RedriveResult) -> RedriveResult:
    if not result.dry_run:
        ctx.state.update("redrive", at=iso(now()), **result.to_json())
    return result
