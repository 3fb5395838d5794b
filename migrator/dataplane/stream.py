"""`migrator replicate --local`: read the source stream here and apply it with the replicator core.

At-least-once, per-key ordered:

* shards are listed with ``DescribeStream`` (paginated by ``ExclusiveStartShardId``) and re-listed every
  round, so children that appear while running are picked up;
* a child shard is read only once its parent has been read to its end (a key's older changes live in
  the parent); a parent that is no longer listed has aged out of the stream and is not waited for;
* a shard without checkpoint starts at ``TRIM_HORIZON``, one with a checkpoint ``AFTER_SEQUENCE_NUMBER``;
* each ``GetRecords`` page goes through :func:`migrator.replicator.core.apply_records`; only then is the
  shard's last applied sequence number checkpointed, durably (:func:`migrator.files.atomic_write_text`);
* when a key fails, the shard is checkpointed only up to the record before the lowest failing sequence
  number and is read again from there (after a backoff): replays are harmless, since full images are
  idempotent and per-key order is kept;
* ``TrimmedDataAccessException`` (or a checkpointed open shard gone from the listing) means changes were
  lost from the stream: :class:`StreamTrimmedError`, the migration must restart from a new export;
* ``ExpiredIteratorException`` gets a new iterator from the checkpoint.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from ..errors import MigratorError
from ..files import atomic_write_text
from ..replicator.batch import RetryPolicy, error_code, is_retryable
from ..replicator.core import RecordError, apply_records, last_applied_sequence, record_epoch

FULL_IMAGE_VIEWS = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})


class LocalReplicationError(MigratorError):
    """The local replicator cannot go on (the CLI prints the message as one sentence)."""


class StreamTrimmedError(LocalReplicationError):
    """Changes the target still needs were trimmed from the stream: they are lost for replay."""


class ReplicationStalledError(LocalReplicationError):
    """The target keeps refusing a write (not throttling: the write itself is refused)."""


@dataclass(frozen=True)
class ShardCheckpoint:
    last_sequence: str | None = None
    closed: bool = False


@dataclass(frozen=True)
class Progress:
    records_applied: int
    lag_s: float | None  # now − ApproximateCreationDateTime of the last applied record
    shard_id: str
    shards_listed: int
    shards_done: int
    puts: int
    deletes: int
    retries: int

    def __str__(self) -> str:
        lag = "?" if self.lag_s is None else f"{self.lag_s:.1f}s"
        return f"{self.records_applied} records applied, lag {lag}, shards {self.shards_done}/{self.shards_listed} done"


@dataclass
class Summary:
    records_applied: int = 0
    puts: int = 0
    deletes: int = 0
    retries: int = 0
    calls: int = 0
    pages: int = 0
    failed_rounds: int = 0
    shards_listed: int = 0
    shards_done: int = 0
    lag_s: float | None = None
    caught_up: bool = False
    stopped: bool = False

    def __str__(self) -> str:
        lag = "?" if self.lag_s is None else f"{self.lag_s:.1f}s"
        state = "caught up" if self.caught_up else ("stopped" if self.stopped else "running")
        return (
            f"{state}: {self.records_applied} records applied ({self.puts} puts, {self.deletes} deletes, "
            f"{self.retries} retries, {self.failed_rounds} failed rounds), "
            f"shards {self.shards_done}/{self.shards_listed} done, lag {lag}"
        )


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def load_checkpoints(path: Path) -> dict[str, ShardCheckpoint]:
    """The checkpoint file: a JSON map of shard id → {"last_sequence", "closed"} (missing: empty)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LocalReplicationError(f"the checkpoint file {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise LocalReplicationError(f"the checkpoint file {path} is not a JSON object")
    out: dict[str, ShardCheckpoint] = {}
    for shard_id, entry in raw.items():
        if not isinstance(entry, dict):
            raise LocalReplicationError(f"the checkpoint file {path} has a bad entry for {shard_id}")
        seq = entry.get("last_sequence")
        out[str(shard_id)] = ShardCheckpoint(None if seq is None else str(seq), bool(entry.get("closed")))
    return out


def save_checkpoints(path: Path, checkpoints: Mapping[str, ShardCheckpoint]) -> None:
    """Write the checkpoint file atomically and durably."""
    data = {sid: {"last_sequence": cp.last_sequence, "closed": cp.closed} for sid, cp in sorted(checkpoints.items())}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


# --------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------


def list_shards(streams_client: Any, stream_arn: str) -> tuple[list[dict[str, Any]], str | None]:
    """Every shard of the stream (all DescribeStream pages) and the stream's view type."""
    shards: list[dict[str, Any]] = []
    view: str | None = None
    start: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        desc = streams_client.describe_stream(**kwargs)["StreamDescription"]
        view = desc.get("StreamViewType", view)
        shards.extend(desc.get("Shards", []))
        start = desc.get("LastEvaluatedShardId")
        if not start:
            return shards, view


class _Run:
    def __init__(
        self,
        streams: Any,
        target: Any,
        stream_arn: str,
        table: str,
        path: Path,
        *,
        progress: Callable[[Progress], None] | None,
        stop: threading.Event,
        max_workers: int,
        retry: RetryPolicy | None,
        page_limit: int,
        max_stalled_rounds: int,
    ) -> None:
        self.streams = streams
        self.target = target
        self.arn = stream_arn
        self.table = table
        self.path = path
        self.progress = progress
        self.stop = stop
        self.max_workers = max_workers
        self.retry = retry or RetryPolicy()
        self.page_limit = page_limit
        self.max_stalled_rounds = max_stalled_rounds
        self.checkpoints = load_checkpoints(path)
        self.iterators: dict[str, str] = {}
        self.failures: dict[str, int] = {}  # consecutive failed rounds per shard
        self.refusals: dict[str, int] = {}  # consecutive rounds where the target refused a write
        self.summary = Summary()

    # -- helpers ------------------------------------------------------------------------------------

    def _done(self, shard_id: str) -> bool:
        cp = self.checkpoints.get(shard_id)
        return cp is not None and cp.closed

    def _checkpoint(self, shard_id: str, last_sequence: str | None, closed: bool = False) -> None:
        previous = self.checkpoints.get(shard_id, ShardCheckpoint())
        self.checkpoints[shard_id] = ShardCheckpoint(last_sequence or previous.last_sequence, closed)
        save_checkpoints(self.path, self.checkpoints)

    def _trimmed(self, shard_id: str, detail: str) -> StreamTrimmedError:
        return StreamTrimmedError(
            f"changes of shard {shard_id} were trimmed from the source stream before they were replayed "
            f"({detail}): they are lost for replay, so the target can no longer be brought up to date; "
            "the migration must restart from a new export"
        )

    def _new_iterator(self, shard_id: str) -> str:
        cp = self.checkpoints.get(shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id}
        if cp is not None and cp.last_sequence:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=cp.last_sequence)
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            return str(self.streams.get_shard_iterator(**kwargs)["ShardIterator"])
        except botocore.exceptions.ClientError as error:
            if error_code(error) == "TrimmedDataAccessException":
                raise self._trimmed(shard_id, f"after sequence {cp.last_sequence if cp else None}") from error
            raise

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stop.wait(seconds)

    def _failed_round(self, shard_id: str, refused: bool, reason: str) -> None:
        self.iterators.pop(shard_id, None)  # read again from the checkpoint
        self.summary.failed_rounds += 1
        self.failures[shard_id] = n = self.failures.get(shard_id, 0) + 1
        if refused:
            self.refusals[shard_id] = r = self.refusals.get(shard_id, 0) + 1
            if r >= self.max_stalled_rounds:
                raise ReplicationStalledError(
                    f"the target table {self.table} refused a write of shard {shard_id} {r} times in a row "
                    f"({reason}); replication stops at the last checkpoint — fix the cause and run again"
                )
        else:
            self.refusals.pop(shard_id, None)
        self._wait(self.retry.delay(n))

    # -- one page -----------------------------------------------------------------------------------

    def step(self, shard: Mapping[str, Any]) -> tuple[int, bool, bool]:
        """Read and apply one page of ``shard``: (records read, shard finished, caught up with it)."""
        sid = str(shard["ShardId"])
        try:
            iterator = self.iterators.get(sid) or self._new_iterator(sid)
            page = self.streams.get_records(ShardIterator=iterator, Limit=self.page_limit)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            code = error_code(error)
            self.iterators.pop(sid, None)
            if code == "ExpiredIteratorException":
                return 0, False, False
            if code == "TrimmedDataAccessException":
                raise self._trimmed(sid, "GetRecords") from error
            if is_retryable(error):  # throttled or unreachable after botocore's own retries
                self._failed_round(sid, False, code)
                return 0, False, False
            raise
        records: list[dict[str, Any]] = list(page.get("Records") or [])
        next_iterator = page.get("NextShardIterator")
        if records:
            try:
                result = apply_records(self.target, self.table, records, max_workers=self.max_workers, retry=self.retry)
            except RecordError as error:
                raise LocalReplicationError(f"shard {sid}: {error}") from error
            s = self.summary
            s.puts += result.puts
            s.deletes += result.deletes
            s.retries += result.retries
            s.calls += result.calls
            s.pages += 1
            if not result.ok:
                safe = last_applied_sequence(records, result)
                if safe is not None:
                    self._checkpoint(sid, safe)
                unappliable = [f for f in result.failed if f.code == "RecordError"]
                if unappliable:  # it would fail the same way every round: there is no failure destination here
                    raise LocalReplicationError(f"shard {sid}: {unappliable[0].message}")
                refused = any(not f.retryable for f in result.failed)
                first = result.failed[0]
                self._failed_round(sid, refused, f"{first.code}: {first.message}")
                return len(records), False, False
            self.failures.pop(sid, None)
            self.refusals.pop(sid, None)
            s.records_applied += len(records)
            epoch = record_epoch(records[-1])
            s.lag_s = None if epoch is None else max(0.0, time.time() - epoch)
        finished = not next_iterator
        if records or finished:
            last = str(records[-1]["dynamodb"]["SequenceNumber"]) if records else None
            self._checkpoint(sid, last, closed=finished)
        if next_iterator:
            self.iterators[sid] = str(next_iterator)
        else:
            self.iterators.pop(sid, None)
        if records and self.progress is not None:
            self.progress(
                Progress(
                    records_applied=self.summary.records_applied,
                    lag_s=self.summary.lag_s,
                    shard_id=sid,
                    shards_listed=self.summary.shards_listed,
                    shards_done=sum(1 for cp in self.checkpoints.values() if cp.closed),
                    puts=self.summary.puts,
                    deletes=self.summary.deletes,
                    retries=self.summary.retries,
                )
            )
        # An open shard is caught up on an empty page; a closed one (EndingSequenceNumber) only at its end.
        ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        caught_up = finished or (not records and not ending)
        return len(records), finished, caught_up

    # -- rounds -------------------------------------------------------------------------------------

    def _list(self) -> dict[str, dict[str, Any]]:
        shards, view = list_shards(self.streams, self.arn)
        if view is not None and view not in FULL_IMAGE_VIEWS:
            raise LocalReplicationError(
                f"the source stream's view type is {view}; the replicator needs NEW_IMAGE or "
                "NEW_AND_OLD_IMAGES (full item images)"
            )
        listed = {str(s["ShardId"]): s for s in shards}
        for sid, cp in self.checkpoints.items():
            if not cp.closed and sid not in listed:
                raise self._trimmed(sid, "the shard is no longer listed, but was not read to its end")
        self.summary.shards_listed = len(listed)
        return listed

    def run(self, until_caught_up: bool, poll_interval: float, relist_interval: float) -> Summary:
        listed: dict[str, dict[str, Any]] = {}
        listed_at: float | None = None
        while not self.stop.is_set():
            # Re-list when the listing is stale, or when it may have changed: a shard finished, or we
            # are about to declare the stream caught up (new children must not be missed).
            fresh = listed_at is None or time.monotonic() - listed_at >= relist_interval
            if fresh:
                try:
                    listed = self._list()
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
                    if not is_retryable(error):
                        raise
                    self._wait(poll_interval)
                    continue
                listed_at = time.monotonic()
            # Caught up: every shard read this round is at its current end. A shard waiting for its
            # parent is not read; its (listed, unfinished) parent is, and speaks for it.
            all_caught_up = True
            any_finished = False
            for sid, shard in listed.items():
                if self._done(sid):
                    continue
                parent = shard.get("ParentShardId")
                if parent and parent in listed and not self._done(str(parent)):
                    continue
                if self.stop.is_set():
                    break
                _read, finished, caught_up = self.step(shard)
                any_finished = any_finished or finished
                all_caught_up = all_caught_up and caught_up and not finished
            self.summary.shards_done = sum(1 for sid in listed if self._done(sid))
            if any_finished:
                listed_at = None
            if all_caught_up and not self.stop.is_set():
                if not fresh:
                    listed_at = None  # confirm against a fresh listing first
                    continue
                if until_caught_up:
                    self.summary.caught_up = True
                    return self.summary
                self._wait(poll_interval)
        self.summary.stopped = True
        return self.summary


def replicate_local(
    streams_client: Any,
    target_client: Any,
    stream_arn: str,
    target_table: str,
    checkpoint_path: Path,
    *,
    until_caught_up: bool,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    poll_interval: float = 1.0,
    max_workers: int = 8,
    retry: RetryPolicy | None = None,
    page_limit: int = 1000,
    max_stalled_rounds: int = 5,
    relist_interval: float = 10.0,
) -> Summary:
    """Replay the stream ``stream_arn`` into ``target_table``, checkpointing per shard in ``checkpoint_path``.

    ``until_caught_up``: return once every shard has been read to its current end (closed shards to
    their end, open shards up to an empty page, in a round that finished no shard); otherwise run
    until ``stop`` is set. Raises :class:`StreamTrimmedError` when changes were trimmed from the stream
    before being replayed, :class:`ReplicationStalledError` when the target refuses a write
    ``max_stalled_rounds`` times in a row. Shards are re-listed every ``relist_interval`` seconds, when
    a shard has been read to its end, and before the stream is declared caught up.
    """
    run = _Run(
        streams_client,
        target_client,
        stream_arn,
        target_table,
        checkpoint_path,
        progress=progress,
        stop=stop or threading.Event(),
        max_workers=max_workers,
        retry=retry,
        page_limit=page_limit,
        max_stalled_rounds=max_stalled_rounds,
    )
    return run.run(until_caught_up, poll_interval, relist_interval)


__all__ = [
    "LocalReplicationError",
    "Progress",
    "ReplicationStalledError",
    "ShardCheckpoint",
    "StreamTrimmedError",
    "Summary",
    "list_shards",
    "load_checkpoints",
    "replicate_local",
    "save_checkpoints",
]
