"""Time as migrator records it: timezone-aware UTC, ISO 8601 to the millisecond."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)
