"""The rich side of :mod:`migrator.progress`: rules, ✓ lines, spinners and live tasks on stderr."""

from __future__ import annotations

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
        with self._progress() as progress:
            progress.add_task(text, total=None, count="")
            yield
        self.done(f"{text} ({time.monotonic() - started:.1f} s)")
