"""Which way the data flows, read from the migration document's ``cutover`` section.

The section (written by ``migrator cutover`` and ``migrator rollback``; absent until the first cutover)::

    {"direction": "forward" | "reverse",
     "history": [{"action": "cutover" | "rollback", "at": "<iso>", "by": "<user@host>"}, ...]}

Absent means forward, never cut over. Those commands flip the event source mappings through the Lambda
API and record the direction; the Terraform shares of phase 4 (the forward mapping) and phase 5 (the
reverse mapping) follow the record through :func:`mapping_enabled`, so a later plan is empty and the two
are never enabled together (invariant 9 of docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..errors import MigratorError

Direction = Literal["forward", "reverse"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "reverse")


def direction_of(cutover: Mapping[str, Any]) -> Direction:
    """The recorded direction (``forward`` when nothing is recorded); a value that is neither is refused."""
    value = cutover.get("direction", "forward")
    if value not in DIRECTIONS:
        raise MigratorError(
            f"the migration document records the direction {value!r}, which is neither forward nor reverse; "
            "fix its cutover section (the state bucket keeps earlier versions)"
        )
    return "reverse" if value == "reverse" else "forward"


def last_action(cutover: Mapping[str, Any]) -> str | None:
    """The last recorded ``cutover`` or ``rollback``, or None when there was none."""
    history = cutover.get("history") or []
    if not isinstance(history, list) or not history or not isinstance(history[-1], Mapping):
        return None
    action = history[-1].get("action")
    return str(action) if action is not None else None


def mapping_enabled(cutover: Mapping[str, Any], mapping: Direction) -> bool:
    """Whether the ``mapping`` replicator (forward: source → target; reverse: target → source) is enabled:
    exactly the one of the recorded direction, never both."""
    return direction_of(cutover) == mapping
