"""One mutating run per migration at a time: a lock object in the state bucket (invariant 8).

``<prefix>/<migration>/lock.json`` is created with ``If-None-Match: *``, so of two runs that start at
once exactly one creates it; it holds who (user, host, pid, command) and since when. A second mutating
command is refused at once with one sentence naming the holder; read-only commands never look at it.
The lock is released when the run ends — on success, on failure, on Ctrl-C and on SIGTERM (both unwind
through ``finally``) — by a delete conditional on the ETag it created, so a run never removes a lock
that is not its own. A run killed with SIGKILL leaves the lock: ``migrator status`` shows it, and
``migrator unlock --force`` removes it after saying whose it was.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from .aws.errors import error_code
from .clock import iso, now
from .errors import MigratorError

TAKEN_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


@dataclass(frozen=True)
class LockHolder:
    user: str
    host: str
    pid: int
    command: str
    since: str

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}, `{self.command}`) since {self.since}"

    def alive(self) -> bool | None:
        """Whether the holder's process still runs: known only on the holder's own host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def me(command: str) -> LockHolder:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return LockHolder(user, socket.gethostname(), os.getpid(), command, iso(now()))


class MigrationLock:
    def __init__(self, client: Callable[[], Any], bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key

    def _read(self) -> tuple[LockHolder | None, str | None]:
        try:
            response = self._client().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if error_code(err) in ("NoSuchKey", "NoSuchBucket", "404"):
                return None, None
            raise
        try:
            raw = json.loads(response["Body"].read())
            holder = LockHolder(
                str(raw["user"]), str(raw["host"]), int(raw["pid"]), str(raw["command"]), str(raw["since"])
            )
        except (ValueError, KeyError, TypeError):
            holder = LockHolder("unknown", "unknown", 0, "unknown", "unknown")
        return holder, str(response["ETag"])

    def holder(self) -> LockHolder | None:
        return self._read()[0]

    def acquire(self, command: str) -> str:
        """Create the lock for this run; its ETag. Refused with one sentence when another run holds it."""
        mine = me(command)
        try:
            response = self._client().put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=json.dumps(asdict(mine), sort_keys=True).encode("utf-8"),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as err:
            if error_code(err) == "NoSuchBucket":
                raise MigratorError(
                    f"the state bucket {self.bucket} does not exist; run phase 1, which creates it"
                ) from None
            if error_code(err) not in TAKEN_CODES:
                raise
            holder = self.holder()
            held_by = holder.describe() if holder else "another run (it just ended)"
            raise MigratorError(
                f"the migration is locked by {held_by}; wait for that run to end, or, if it is gone (killed), "
                "remove its lock with `migrator unlock --force` and run again"
            ) from None
        return str(response["ETag"])

    def release(self, etag: str) -> None:
        """Remove this run's lock (only if it is still the one this run created)."""
        try:
            self._client().delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except ClientError as err:
            if error_code(err) not in ("NoSuchKey", "404", *TAKEN_CODES):
                raise

    def force_release(self) -> LockHolder | None:
        """Remove whatever lock there is (``unlock --force``); whose it was, or None when there was none."""
        holder, etag = self._read()
        if etag is None:
            return None
        self.release(etag)
        return holder

    @contextmanager
    def held(self, command: str) -> Iterator[None]:
        etag = self.acquire(command)
        try:
            yield
        finally:
            self.release(etag)
