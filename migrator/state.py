"""The migration document: what must survive between phases, restarts, processes and machines.

One JSON document, readable by an operator: in the state bucket at ``<prefix>/<migration>/state.json``
(:class:`S3Store`, what every command uses), or in a local file (:class:`FileStore`). Every change is a
read-modify-write of the *current* document (:meth:`MigrationState.change`): the change is applied to
what is stored now, never to a copy read earlier, so two processes changing the document at the same
time (a long ``replicate --local`` and a ``verify``, on two machines) never overwrite each other. The
S3 store writes with ``If-Match`` on the ETag it read (``If-None-Match: *`` for a new document); a
writer that lost the race re-reads and re-applies its change. Reads always return fresh copies;
changing a copy changes nothing. A document that does not parse, is not an object, has a section of
the wrong shape, or was written by a newer migrator is refused with one sentence.
"""

from __future__ import annotations

import copy
import fcntl
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError

from .aws.errors import error_code
from .clock import iso, now
from .errors import MigratorError
from .files import atomic_write_text

T = TypeVar("T")
Document = dict[str, Any]

#: The version of the document's layout this migrator reads and writes; a newer one is refused.
SCHEMA = 1
#: Sections whose value must be an object (the others are free-form, and ``schema`` is a number).
OBJECT_SECTIONS = (
    "phases",
    "fingerprint",
    "stream",
    "source_table",
    "export",
    "import",
    "replication",
    "verify",
    "redrive",
    "source_outputs",
    "target_outputs",
    "handover",
    "cutover",
    "cleanup",
)


def parse_document(text: str, where: str) -> Document:
    """The document stored as ``text`` at ``where``, checked; one sentence for each way it can be wrong."""
    fix = f"restore an earlier version of {where} (the state bucket keeps versions) or fix it, then run again"
    if not text.strip():
        raise MigratorError(f"the migration document {where} is empty; {fix}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MigratorError(
            f"the migration document {where} is not JSON ({err.msg} at line {err.lineno}); {fix}"
        ) from None
    if not isinstance(data, dict):
        raise MigratorError(f"the migration document {where} is a JSON {type(data).__name__}, not an object; {fix}")
    schema = data.get("schema", SCHEMA)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise MigratorError(
            f"the migration document {where} was written by a newer migrator (schema {schema}, this one reads "
            f"{SCHEMA}); upgrade migrator before you go on"
        )
    for name in OBJECT_SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise MigratorError(
                f"the migration document {where} has a section {name!r} that is a {type(data[name]).__name__}, "
                f"not an object; {fix}"
            )
    phases = data.get("phases", {})
    for number, record in phases.items():
        if not isinstance(record, dict):
            raise MigratorError(
                f"the migration document {where} has a phase record {number!r} that is not an object; {fix}"
            )
    return data


def _dump(doc: Document) -> str:
    doc["schema"] = SCHEMA
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


class StateStore(Protocol):
    def load(self) -> Document:
        """The current document (empty when there is none)."""

    def transact(self, change: Callable[[Document], T]) -> T:
        """Apply ``change`` to the current document and store the result, with no write in between."""


class FileStore:
    """The document in a local file; writers are serialised by an exclusive ``flock`` on a lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def load(self) -> Document:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return parse_document(text, str(self.path))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def transact(self, change: Callable[[Document], T]) -> T:
        with self._locked():
            doc = self.load()
            result = change(doc)
            atomic_write_text(self.path, _dump(doc))
            return result


#: Conflicts of a conditional write: the object changed (412) or another write to it is in flight (409).
CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
MAX_CONFLICTS = 50


class S3Store:
    """The document as one S3 object, changed by compare-and-swap on its ETag.

    ``client`` makes the S3 client of the bucket's account (built on first use). A document that is not
    there yet (nor its bucket: phase 1 creates it) reads as empty; the first write creates it with
    ``If-None-Match: *``.
    """

    def __init__(self, client: Callable[[], Any], bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _get(self) -> tuple[Document, str | None]:
        try:
            response = self._client().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if error_code(err) in ("NoSuchKey", "NoSuchBucket", "404"):
                return {}, None
            raise
        text = response["Body"].read().decode("utf-8")
        return parse_document(text, self.where), str(response["ETag"])

    def load(self) -> Document:
        return self._get()[0]

    def transact(self, change: Callable[[Document], T]) -> T:
        for attempt in range(MAX_CONFLICTS):
            doc, etag = self._get()
            result = change(doc)
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self._client().put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=_dump(doc).encode("utf-8"),
                    ContentType="application/json",
                    ServerSideEncryption="AES256",
                    **condition,
                )
            except ClientError as err:
                if error_code(err) == "NoSuchBucket":
                    raise MigratorError(
                        f"the state bucket {self.bucket} does not exist; run phase 1, which creates it"
                    ) from None
                if error_code(err) not in CONFLICT_CODES:
                    raise
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))  # another writer won: again
                continue
            return result
        raise MigratorError(
            f"the migration document {self.where} kept changing under {MAX_CONFLICTS} attempts to update it; run again"
        )


class _Frozen:
    """A document read once; a snapshot is for reading."""

    def __init__(self, doc: Document) -> None:
        self._doc = doc

    def load(self) -> Document:
        return copy.deepcopy(self._doc)

    def transact(self, change: Callable[[Document], T]) -> T:
        raise RuntimeError("a snapshot of the migration document cannot be changed")


class MigrationState:
    """Sections ``phases``, ``fingerprint``, ``stream``, ``export``, ``import``, ``replication``, ``verify`` …"""

    def __init__(self, directory: Path | None = None, store: StateStore | None = None) -> None:
        if store is None:
            if directory is None:
                raise ValueError("a MigrationState needs a directory or a store")
            store = FileStore(directory / "state.json")
        self.store: StateStore = store

    def snapshot(self) -> MigrationState:
        """The document as it is now, read once: for a reader that looks at many sections (status)."""
        return MigrationState(store=_Frozen(self.store.load()))

    # Reading: always the current document, as a copy ------------------------------------------------
    @property
    def data(self) -> Document:
        return self.store.load()

    def section(self, name: str) -> dict[str, Any]:
        """A copy of section ``name`` as it is now ({} when absent)."""
        value = self.store.load().get(name)
        return copy.deepcopy(value) if isinstance(value, dict) else {}

    # Changing: read-modify-write of the current document -------------------------------------------
    def change(self, fn: Callable[[Document], T]) -> T:
        """Apply ``fn`` to the current document and store it (``fn`` may run again on a conflict)."""
        return self.store.transact(fn)

    def update(self, name: str, **values: Any) -> None:
        """Set ``values`` in section ``name``, keeping its other keys."""

        def apply(doc: Document) -> None:
            section = doc.get(name)
            if not isinstance(section, dict):
                section = doc[name] = {}
            section.update(copy.deepcopy(values))

        self.change(apply)

    def replace(self, name: str, value: dict[str, Any]) -> None:
        """Set section ``name`` to ``value`` as a whole."""

        def apply(doc: Document) -> None:
            doc[name] = copy.deepcopy(value)

        self.change(apply)

    def setdefault(self, name: str, value: Any) -> Any:
        """Section ``name``, set to ``value`` first when absent; returns what is stored."""

        def apply(doc: Document) -> Any:
            return copy.deepcopy(doc.setdefault(name, copy.deepcopy(value)))

        return self.change(apply)

    # Phases ---------------------------------------------------------------------------------------
    def phase_status(self, number: int) -> str:
        return str(self.phase_record(number).get("status", "not started"))

    def phase_record(self, number: int) -> dict[str, Any]:
        record = self.section("phases").get(str(number))
        return record if isinstance(record, dict) else {}

    def mark_phase(self, number: int, status: str, **extra: Any) -> None:
        def apply(doc: Document) -> None:
            phases = doc.get("phases")
            if not isinstance(phases, dict):
                phases = doc["phases"] = {}
            record = phases.setdefault(str(number), {})
            record["status"] = status
            record[f"{status.replace(' ', '_')}_at"] = iso(now())
            record.update(extra)

        self.change(apply)
