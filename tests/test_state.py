"""The migration document: every change is a read-modify-write of the current document, never lost."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from migrator.state import SCHEMA, MigrationState

UPDATES = 150


def _writer(directory: str, section: str, start: multiprocessing.synchronize.Event) -> None:
    state = MigrationState(Path(directory))
    start.wait()
    for n in range(UPDATES):
        state.update(section, **{f"k{n:03d}": n})


def test_two_processes_updating_different_sections_at_once_lose_nothing(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    writers = [spawn.Process(target=_writer, args=(str(tmp_path), name, start)) for name in ("verify", "replication")]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    document = json.loads((tmp_path / "state.json").read_text())
    for name in ("verify", "replication"):
        assert document[name] == {f"k{n:03d}": n for n in range(UPDATES)}, name


def test_a_copy_read_earlier_never_overwrites_a_later_change(tmp_path: Path) -> None:
    mine = MigrationState(tmp_path)
    other = MigrationState(tmp_path)
    mine.update("replication", local_lag_s=3.0)
    stale = mine.section("replication")  # a copy, read before the other process writes
    other.update("verify", missing=0)
    stale["local_lag_s"] = 99.0  # changing a copy changes nothing
    mine.update("replication", local_caught_up=True)
    assert mine.data == {
        "replication": {"local_lag_s": 3.0, "local_caught_up": True},
        "verify": {"missing": 0},
        "schema": SCHEMA,  # every write stamps the layout's version
    }


def test_phase_records_keep_when_each_status_was_reached(tmp_path: Path) -> None:
    state = MigrationState(tmp_path)
    assert state.phase_status(2) == "not started"
    state.mark_phase(2, "in progress")
    state.mark_phase(2, "done")
    record = state.phase_record(2)
    assert record["status"] == "done"
    assert record["in_progress_at"] <= record["done_at"]
