"""A phase whose roots take nothing from each other (fallback, cleanup) applies them at the same time: each
root's result is recorded, a failure of one is raised once both have ended, and an interruption stops every
Terraform still running. Terraform itself is replaced here by stand-ins (no Terraform runs)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import MigratorError
from migrator.infra.terraform import TerraformRunner
from migrator.phases import CLEANUP, FALLBACK, IMPORT, PHASES
from migrator.phases.base import Phase
from migrator.phases.runner import PhaseRunner

from .support import migration, write_config


def test_only_phases_with_independent_roots_apply_them_together() -> None:
    assert [p.name for p in PHASES if p.roots_together] == [FALLBACK.name, CLEANUP.name]
    assert all(len(p.roots) == 2 for p in PHASES if p.roots_together)


@pytest.fixture
def runner(tmp_path: Path, moto_endpoint: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> PhaseRunner:
    m = migration(write_config(tmp_path, moto_endpoint, f"roots-{unique}", f"Roots{unique}"))
    monkeypatch.setattr(PhaseRunner, "tfvars", lambda self, p, root: tmp_path / f"{root}.tfvars.json")
    return PhaseRunner(m)


class Roots:
    """A stand-in for ``PhaseRunner._apply_root`` that notes which roots run at the same time."""

    def __init__(self, fail: str | None = None, hold: float = 0.3) -> None:
        self.fail, self.hold = fail, hold
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.most_at_once = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Roots:
        monkeypatch.setattr(PhaseRunner, "_apply_root", lambda runner, p, root, var_file: self.apply(root))
        return self

    def apply(self, root: str) -> Any:
        with self.lock:
            self.running.add(root)
            self.most_at_once = max(self.most_at_once, len(self.running))
        time.sleep(self.hold)
        with self.lock:
            self.running.discard(root)
        if root == self.fail:
            raise MigratorError(f"terraform apply failed in {root}: boom")
        return {"name": f"{root}-output"}, [("add", f"module.{root}[0].aws_iam_role.this")]


def test_independent_roots_run_at_once_and_each_result_is_recorded(
    runner: PhaseRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots = Roots().install(monkeypatch)
    runner._apply_roots(FALLBACK)
    assert roots.most_at_once == 2
    state = runner.ctx.state
    assert state.section("source_outputs") == {"name": "source-output"}
    assert state.section("target_outputs") == {"name": "target-output"}


def test_dependent_roots_run_one_after_the_other(runner: PhaseRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    roots = Roots(hold=0.05).install(monkeypatch)
    runner._apply_roots(IMPORT)
    two_roots = Phase(number=9, name="two", summary="", accounts=("source", "target"), roots=("source", "target"))
    runner._apply_roots(two_roots)
    assert roots.most_at_once == 1


def test_a_failed_root_is_raised_after_the_other_ended_and_was_recorded(
    runner: PhaseRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    Roots(fail="target").install(monkeypatch)
    with pytest.raises(MigratorError, match="failed in target: boom"):
        runner._apply_roots(FALLBACK)
    assert runner.ctx.state.section("source_outputs") == {"name": "source-output"}
    assert runner.ctx.state.section("target_outputs") == {}


def test_an_interruption_stops_every_terraform_still_running(
    runner: PhaseRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []
    release = threading.Event()

    class Stopping:
        def __init__(self, root: str) -> None:
            self.root = root

        def interrupt(self) -> None:
            stopped.append(self.root)
            release.set()

    def hang(runner: PhaseRunner, p: Phase, root: str, var_file: Path) -> Any:
        release.wait(30)
        raise MigratorError(f"terraform apply failed in {root}: interrupted")

    # Ctrl-C (or SIGTERM, turned into Interrupted) reaches the calling thread while it waits for the roots:
    # its first wait raises, as a signal handler would make it raise.
    real_join = threading.Thread.join
    interrupted: list[str] = []

    def join(thread: threading.Thread, timeout: float | None = None) -> None:
        if thread.name.startswith("terraform-") and not interrupted:
            interrupted.append(thread.name)
            raise KeyboardInterrupt
        real_join(thread, timeout)

    monkeypatch.setattr(PhaseRunner, "_apply_root", hang)
    monkeypatch.setattr(PhaseRunner, "terraform", lambda self, root: Stopping(root))
    monkeypatch.setattr(threading.Thread, "join", join)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner._apply_roots(FALLBACK)
    assert interrupted == ["terraform-source"]
    assert sorted(stopped) == ["source", "target"]
    assert time.monotonic() - started < 20  # not the 30 s the roots would have waited


def test_interrupt_stops_a_command_running_in_another_thread_and_its_children(tmp_path: Path) -> None:
    """``TerraformRunner.interrupt`` (what the runner calls for a root running in another thread) ends the
    command's whole process group, children included; the thread then fails in one sentence."""
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $$ $! > {pids}; wait"
    tf = TerraformRunner(
        root=tmp_path, data_dir=tmp_path / "data", env=dict(os.environ), command=["bash", "-c", script]
    )
    failed: list[BaseException] = []

    def run() -> None:
        try:
            tf._run(["apply"])
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    group, child = (int(x) for x in pids.read_text().split())
    tf.interrupt()
    thread.join(20)
    assert not thread.is_alive()
    assert failed and isinstance(failed[0], MigratorError) and "terraform apply failed" in str(failed[0])
    assert not alive(group) and not alive(child)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child may wait a moment to be reaped by init)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True
