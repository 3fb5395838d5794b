"""Verify: compare the source and target tables completely; repair what differs from the current source.

* :mod:`.engine`: what every engine returns (:class:`VerifyResult`) and the :class:`VerifyEngine` interface;
* :mod:`.scan`: the scan engine (parallel segmented scans, consistent re-checks), the default;
* :mod:`.repair`: write the current source item (or delete) for each differing key;
* :mod:`.run`: verify wired to a migration (its accounts, retry policy and recorded result).
"""

from __future__ import annotations

from .engine import KINDS, RepairResult, VerifyEngine, VerifyRepairResult, VerifyResult
from .repair import repair, verify_and_repair
from .scan import ScanEngine, verify_tables

__all__ = [
    "KINDS",
    "RepairResult",
    "ScanEngine",
    "VerifyEngine",
    "VerifyRepairResult",
    "VerifyResult",
    "repair",
    "verify_and_repair",
    "verify_tables",
]
