"""The one exception type the CLI turns into a single clear sentence and a non-zero exit."""

from __future__ import annotations


class MigratorError(Exception):
    """A failure the operator can act on. ``str(error)`` is one sentence: what is wrong, what to do."""

    exit_code = 1


class ConfigError(MigratorError):
    exit_code = 2
