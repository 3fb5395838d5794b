"""The migration document: what must survive between phases, restarts and other processes.

One JSON document (``.migrator/<migration>/state.json`` beside migration.yaml by default), readable by an
operator. Every change is a read-modify-write of the *current* document under a lock
(:meth:`MigrationState.change`): the change is applied to what is on disk now, never to a copy read
earlier, so two processes changing the document at the same time (a long ``replicate --local`` and a
``verify``) never overwrite each other. Reads always return fresh copies; changing a copy changes
nothing. The store behind it is :class:`FileStore` (``fcntl`` lock, atomic writes); a remote store with
compare-and-swap replaces it without changing this interface.
"""

from __future__ import annotations

import copy
import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .clock import iso, now
from .files import atomic_write_text

T = TypeVar("T")
Document = dict[str, Any]


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
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            return {}
        return data

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
            atomic_write_text(self.path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
            return result


class MigrationState:
    """Sections ``phases``, ``fingerprint``, ``stream``, ``export``, ``import``, ``replication``, ``verify`` …"""

    def __init__(self, directory: Path, store: StateStore | None = None) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.store: StateStore = store or FileStore(self.path)

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
