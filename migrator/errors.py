"""The one exception type the CLI turns into a single clear sentence and a non-zero exit."""

from __future__ import annotations


class MigratorError(Exception):
    """A failure the operator can act on. ``str(error)`` is one sentence: what is wrong, what to do."""

    exit_code = 1


class ConfigError(MigratorError):
    exit_code = 2


class Interrupted(BaseException):
    """The operator stopped migrator with a signal (SIGTERM), like KeyboardInterrupt for Ctrl-C: a
    BaseException, so no ``except Exception`` swallows it. ``exit_code`` is 128 + the signal number."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code
