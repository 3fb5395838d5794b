"""The backlog of a direction: the changes in a stream that the table it replicates into does not show yet.

This is what "caught up" means for the cutover gate and for the drain of ``cutover`` and ``rollback``:
not the time since the replicator last ran (a quiet table would look behind), but the **age of the
oldest change not yet replicated**. The stream is read from ``TRIM_HORIZON`` (shards in order, parents
before children), every key keeps its last change (new image, or a deletion) and the time of its
oldest change not yet seen in the other table; each poll reads what the stream gained since the last
one and compares every pending key with a consistent ``BatchGetItem`` of the other table. A key whose
item equals its last change's image (or is absent after a deletion) is replicated.

It reads only: the stream with the operator's credentials of the stream's account, the other table
with those of its own. A stream holds at most 24 h of changes, so the first poll reads at most that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..aws.codec import canonical_key, item_digest
from ..aws.dynamodb import DEFAULT_RETRY, MAX_BATCH_GET, RetryPolicy, chunks, get_batch
from ..clock import now
from ..errors import MigratorError
from .stream import list_shards


@dataclass
class _Pending:
    key: dict[str, Any]
    digest: bytes | None  # of the last change's NewImage; None when the last change deleted the item
    since: dt.datetime  # ApproximateCreationDateTime of the oldest change not yet seen replicated


@dataclass(frozen=True)
class BacklogView:
    pending: int  # keys whose last change the other table does not show
    oldest_s: float  # age of the oldest change not yet replicated (0 when nothing is pending)
    read: int  # records this poll read from the stream
    total: int  # records read since the first poll


def _created(record: Mapping[str, Any], fallback: dt.datetime) -> dt.datetime:
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return fallback


def order_shards(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children (a key's changes in a parent shard precede those in its child). Pure."""
    by_id = {s["ShardId"]: s for s in shards}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in seen:
            return
        seen.add(shard["ShardId"])
        parent = by_id.get(shard.get("ParentShardId") or "")
        if parent is not None:
            visit(parent)
        ordered.append(shard)

    for shard in shards:
        visit(shard)
    return ordered


class Backlog:
    """Changes of ``stream_arn`` not yet in ``table`` (read through ``table_client``)."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        table_client: Any,
        table: str,
        key_names: list[str],
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], dt.datetime] = now,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.table_client = table_client
        self.table = table
        self.key_names = key_names
        self.retry = retry
        self.clock = clock
        self._iterators: dict[str, str | None] = {}  # shard → next iterator (None: closed and read to its end)
        self._pending: dict[bytes, _Pending] = {}
        self.total = 0

    def _iterator(self, shard_id: str) -> str | None:
        if shard_id not in self._iterators:
            try:
                answer = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )
            except self.streams.exceptions.ResourceNotFoundException:
                return None  # trimmed away: its changes are older than the retention
            self._iterators[shard_id] = answer.get("ShardIterator")
        return self._iterators[shard_id]

    def _read(self) -> int:
        shards, _ = list_shards(self.streams, self.stream_arn)
        read = 0
        for shard in order_shards(shards):
            shard_id = shard["ShardId"]
            iterator = self._iterator(shard_id)
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records = page.get("Records", [])
                for record in records:
                    self._note(record)
                read += len(records)
                iterator = page.get("NextShardIterator")
                self._iterators[shard_id] = iterator
                if not records:
                    break  # at the end of an open shard (a closed one ends with no next iterator)
        self.total += read
        return read

    def _note(self, record: Mapping[str, Any]) -> None:
        change = record.get("dynamodb", {})
        keys = change.get("Keys") or {}
        canon = canonical_key(keys, self.key_names)[0]
        image = change.get("NewImage") if record.get("eventName") != "REMOVE" else None
        if record.get("eventName") != "REMOVE" and image is None:
            raise MigratorError(
                f"the stream {self.stream_arn} carries no new images, so what its changes wrote cannot be checked; "
                "it needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
            )
        digest = None if image is None else item_digest(image)
        created = _created(record, self.clock())
        known = self._pending.get(canon)
        since = created if known is None else min(known.since, created)
        self._pending[canon] = _Pending(key=dict(keys), digest=digest, since=since)

    def _settle(self) -> None:
        """Drop every pending key the other table already shows."""
        for chunk in chunks(list(self._pending.items()), MAX_BATCH_GET):
            outcome = get_batch(self.table_client, self.table, [p.key for _, p in chunk], retry=self.retry)
            if outcome.unprocessed:
                raise MigratorError(
                    f"the table {self.table} could not be read to compare the replicated changes "
                    f"({outcome.error}); run the command again"
                )
            found = {canonical_key(item, self.key_names)[0]: item_digest(item) for item in outcome.items}
            for canon, pending in chunk:
                if found.get(canon) == pending.digest:
                    del self._pending[canon]

    def poll(self) -> BacklogView:
        read = self._read()
        self._settle()
        oldest = min((p.since for p in self._pending.values()), default=None)
        age = 0.0 if oldest is None else max(0.0, (self.clock() - oldest).total_seconds())
        return BacklogView(pending=len(self._pending), oldest_s=age, read=read, total=self.total)
