"""Progress reporting: the one way code below the CLI tells the operator what is happening.

Phases and data steps report through a :class:`Reporter`; they never print. The CLI passes a rich
implementation (:class:`migrator.cli.progress.RichReporter`: rules, spinners, bars, ✓ lines); tests and
library callers get :class:`QuietReporter`, which shows nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Task(Protocol):
    """One line of a live display: its description and, when it has a total, how far it got."""

    def update(self, description: str | None = None, *, completed: int | None = None) -> None: ...


class Board(Protocol):
    """A live display of tasks, shown while a long wait runs and gone when it ends."""

    def add(self, description: str, *, total: int | None = None) -> Task: ...


class Reporter(Protocol):
    def heading(self, text: str) -> None:
        """A section starts (a phase, and in which account)."""

    def done(self, text: str) -> None:
        """Something finished (shown with a check mark)."""

    def note(self, text: str) -> None:
        """Something the operator should know that is not an error (shown with a warning mark)."""

    def info(self, text: str) -> None:
        """A plain line (a deadline, what to run next)."""

    def live(self) -> AbstractContextManager[Board]:
        """A live display for a long wait (spinners, bars); nothing is left on screen afterwards."""

    def step(self, text: str) -> AbstractContextManager[None]:
        """A long step shown with a spinner while it runs, then as done."""


class _QuietTask:
    def update(self, description: str | None = None, *, completed: int | None = None) -> None:
        return None


class _QuietBoard:
    def add(self, description: str, *, total: int | None = None) -> Task:
        return _QuietTask()


class QuietReporter:
    """A reporter that shows nothing (library use, tests)."""

    def heading(self, text: str) -> None:
        return None

    def done(self, text: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def info(self, text: str) -> None:
        return None

    @contextmanager
    def live(self) -> Iterator[Board]:
        yield _QuietBoard()

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        yield
