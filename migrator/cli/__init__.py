"""The ``migrator`` command line: one module per command (and its rendering), registered on one app."""

from __future__ import annotations

from .app import app, raise_on_sigterm

# Registered in the order `migrator --help` lists the commands.
# isort: off
from . import plan, apply, replicate, verify, redrive, status, cutover, handover, state, demo
# isort: on

__all__ = [
    "app",
    "apply",
    "cutover",
    "demo",
    "handover",
    "main",
    "plan",
    "redrive",
    "replicate",
    "state",
    "status",
    "verify",
]


def main() -> None:
    raise_on_sigterm()
    app()
