"""Migration state that must survive between phases and restarts.

Kept as one JSON file in the migration's state directory (``.migrator/<migration>/state.json`` beside
migration.yaml by default), readable by an operator, written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MigrationState:
    """A small JSON document: ``phases``, ``stream``, ``export``, ``import``, ``verify`` sections."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.data: dict[str, Any] = {}
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.setdefault(name, {})
        assert isinstance(value, dict)
        return value

    def update(self, name: str, **values: Any) -> None:
        self.section(name).update(values)
        self.save()

    # Phases ---------------------------------------------------------------------------------------
    def phase_status(self, number: int) -> str:
        return str(self.section("phases").get(str(number), {}).get("status", "not started"))

    def phase_record(self, number: int) -> dict[str, Any]:
        record = self.section("phases").setdefault(str(number), {})
        assert isinstance(record, dict)
        return record

    def mark_phase(self, number: int, status: str, **extra: Any) -> None:
        record = self.phase_record(number)
        record["status"] = status
        record[f"{status.replace(' ', '_')}_at"] = iso(now())
        record.update(extra)
        self.save()
