"""The rich side of :mod:`migrator.progress`: rules, ✓ lines, spinners and live tasks on stderr."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..progress import Board, Task


class _RichTask:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def update(self, description: str | None = None, *, completed: int | None = None) -> None:
        if completed is None:
            self._progress.update(self._task, description=description)
        else:
            self._progress.update(self._task, description=description, count=f"{completed:,}")


class _RichBoard:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def add(self, description: str, *, total: int | None = None) -> Task:
        return _RichTask(self._progress, self._progress.add_task(description, total=total, count=""))


class RichReporter:
    """Reports on a rich console (stderr by default, so stdout stays for ``--json``)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        # Steps may run at once (a phase's independent roots, each in its own thread); rich allows one live
        # display at a time, so concurrent steps share one, each a line of it.
        self._lock = threading.Lock()
        self._steps: Progress | None = None
        self._running_steps = 0

    def heading(self, text: str) -> None:
        self.console.rule(Text(text))

    def done(self, text: str) -> None:
        self.console.print(Text.assemble(("✓ ", "green"), text), highlight=False)

    def note(self, text: str) -> None:
        self.console.print(Text.assemble(("! ", "yellow"), text), highlight=False)

    def info(self, text: str) -> None:
        self.console.print(Text(text), highlight=False)

    def _progress(self) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )

    @contextmanager
    def live(self) -> Iterator[Board]:
        with self._progress() as progress:
            yield _RichBoard(progress)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """A spinner while ``text`` runs, then ``✓ text (12.3 s)``; off a terminal (a log, CI), where no
        spinner shows, a start line ``… text`` first, so a long step is never silent."""
        if not self.console.is_terminal:
            self.console.print(Text.assemble(("… ", "dim"), text), highlight=False)
        started = time.monotonic()
        with self._lock:
            if self._steps is None:
                self._steps = self._progress()
                self._steps.start()
            self._running_steps += 1
            progress = self._steps
            task = progress.add_task(text, total=None, count="")
        try:
            yield
        finally:
            with self._lock:
                progress.remove_task(task)
                self._running_steps -= 1
                if self._running_steps == 0:
                    progress.stop()
                    self._steps = None
        self.done(f"{text} ({time.monotonic() - started:.1f} s)")
