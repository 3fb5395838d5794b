"""The shapes of what the read models return: plain typed dictionaries, so ``--json`` is stable.

Every section always has the same keys; what could not be read is None, with the reason in
``unavailable``.
"""

from __future__ import annotations

from typing import TypedDict


class PhaseView(TypedDict):
    phase: int
    name: str
    account: str
    status: str  # not started | applied | in progress | interrupted | done | failed | unknown
    at: str | None
    origin: str  # "recorded" (the migration document) or "aws" (inferred from what exists in the accounts)


class ExportView(TypedDict):
    status: str | None  # "not started", IN_PROGRESS, COMPLETED, FAILED; None when unreadable
    arn: str | None
    export_time: str | None
    start_time: str | None
    end_time: str | None
    items: int | None
    bytes: int | None
    failure: str | None
    origin: str | None
    unavailable: str | None


class ImportView(TypedDict):
    status: str | None
    table: str | None  # the target table's status, or "absent"
    imported: int | None
    errors: int | None
    origin: str | None
    unavailable: str | None


class ReplicatorView(TypedDict):
    mapping: str | None  # the mapping's State, "absent", or None when unreadable
    mapping_uuid: str | None
    iterator_age_ms: int | None
    local_lag_s: float | None
    local_caught_up: bool | None
    local_last_run: str | None
    failures_waiting: int | None
    reverse_mapping: str | None  # the way back (phase 5), in the target account: State, "absent", or None
    reverse_mapping_uuid: str | None
    unavailable: str | None


class DeadlineView(TypedDict):
    at: str | None
    seconds_left: int | None
    passed: bool | None
    unavailable: str | None


class VerifyView(TypedDict):
    at: str | None
    clean: bool | None
    source_items: int | None
    target_items: int | None
    missing: int | None
    different: int | None
    extraneous: int | None


class LockView(TypedDict):
    held: bool | None  # None when the lock could not be read
    holder: str | None  # user@host (pid, command)
    since: str | None
    alive: bool | None  # whether the holder's process still runs (known only on its own host)
    unavailable: str | None


class HandoverView(TypedDict):
    address: str | None  # the table's address in the application's Terraform
    file: str | None  # the file written for it
    at: str | None
    by: str | None  # user@host


class SwitchRecord(TypedDict):
    action: str  # cutover | rollback
    at: str
    by: str


class DirectionView(TypedDict):
    current: str | None  # forward | reverse | none | both, from the two mappings on AWS; None when unreadable
    recorded: str  # what the last cutover or rollback recorded (forward before any)
    forward_mapping: str | None  # the mapping's State, "absent", or None when unreadable
    reverse_mapping: str | None
    history: list[SwitchRecord]
    cleanup_removed: dict[str, list[str]] | None  # what cleanup removed, per root, once it ran
    unavailable: str | None


StatusView = TypedDict(
    "StatusView",
    {
        "migration": str,
        "source": str,
        "target": str,
        "read_at": str,
        "phases": list[PhaseView],
        "export": ExportView,
        "import": ImportView,
        "replicator": ReplicatorView,
        "direction": DirectionView,
        "stream_deadline": DeadlineView,
        "last_verify": VerifyView,
        "lock": LockView,
        "handover": HandoverView | None,  # None until `migrator handover` ran
        "next": str | None,  # what to run next, when a run was interrupted
    },
)
