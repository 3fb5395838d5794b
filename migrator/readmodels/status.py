"""`migrator status`: where a migration stands, read from AWS first and the migration document second.

A read model: it returns data (:class:`.views.StatusView`); the CLI renders it.

Everything that can be read from the accounts is (so the command works from any machine with the
config): the export is found with ListExports when the document has no ARN, the event source
mapping with ListEventSourceMappings when the Terraform outputs have no UUID, and a phase with no local
record is inferred from what exists in AWS. What could not be read is shown with the reason
(``unavailable``), never silently left out and never a crash. Every section always has the same keys,
so ``--json`` is a stable shape for scripts.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.errors import error_code, is_not_found
from ..aws.s3 import failure_object_keys
from ..aws.session import QUICK
from ..clock import iso, now, parse_iso
from ..phases import PHASES, phase
from ..state import MigrationState
from .views import (
    DeadlineView,
    DirectionView,
    ExportView,
    HandoverView,
    ImportView,
    LockView,
    PhaseView,
    ReplicatorView,
    StatusView,
    SwitchRecord,
    VerifyView,
)

if TYPE_CHECKING:
    from ..aws.session import AccountSession
    from ..context import MigrationContext

__all__ = [
    "DeadlineView",
    "ExportView",
    "ImportView",
    "PhaseView",
    "ReplicatorView",
    "StatusView",
    "Unavailable",
    "VerifyView",
    "collect_status",
    "deadline_view",
    "inferred_phase",
    "read_replicator",
]


class Unavailable(Exception):
    """A piece that could not be read; ``str()`` says what and why."""


T = TypeVar("T")


# Reading ------------------------------------------------------------------------------------------
def reason(err: BaseException) -> str:
    if isinstance(err, Unavailable):
        return str(err)
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        message = str(error.get("Message", ""))[:160]
        return f"{err.operation_name} failed with {error.get('Code', 'an error')}" + (
            f" ({message})" if message else ""
        )
    return f"{type(err).__name__}: {str(err)[:160]}"


def attempt(fn: Callable[[], T]) -> tuple[T | None, str | None]:
    """``fn()`` and no reason, or None and why it could not be read."""
    try:
        return fn(), None
    except (Unavailable, ClientError, BotoCoreError) as err:
        return None, reason(err)


def client(session: AccountSession, service: str) -> Any:
    """A client that answers quickly (few retries, short connect timeout): status says what it could not read."""
    return session.client(service, **QUICK)


def _when(value: Any) -> str | None:
    return iso(value) if isinstance(value, dt.datetime) else (str(value) if value else None)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _latest(descriptions: list[dict[str, Any]]) -> dict[str, Any] | None:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    ranked = sorted(enumerate(descriptions), key=lambda p: (p[1].get("StartTime") or epoch, p[0]))
    return ranked[-1][1] if ranked else None


# Export ---------------------------------------------------------------------------------------------
NO_EXPORT = ExportView(
    status=None,
    arn=None,
    export_time=None,
    start_time=None,
    end_time=None,
    items=None,
    bytes=None,
    failure=None,
    origin=None,
    unavailable=None,
)


def _source_table_arn(m: MigrationContext) -> str:
    name = m.config.source_table_name
    try:
        return str(client(m.source, "dynamodb").describe_table(TableName=name)["Table"]["TableArn"])
    except ClientError as err:
        if is_not_found(err):
            c = m.config.source
            raise Unavailable(f"the source table {name} does not exist in {c.account_id}/{c.region}") from None
        raise


def _export_arns(ddb: Any, table_arn: str) -> list[str]:
    arns: list[str] = []
    kwargs: dict[str, Any] = {"TableArn": table_arn}
    while True:
        page = ddb.list_exports(**kwargs)
        arns.extend(str(e["ExportArn"]) for e in page.get("ExportSummaries", []))
        if not page.get("NextToken"):
            return arns
        kwargs["NextToken"] = page["NextToken"]


def find_export(m: MigrationContext) -> dict[str, Any] | None:
    """This migration's latest export (into its bucket and prefix) by ListExports, or None."""
    ddb = client(m.source, "dynamodb")
    found = [ddb.describe_export(ExportArn=arn)["ExportDescription"] for arn in _export_arns(ddb, _source_table_arn(m))]
    ours = [
        d
        for d in found
        if d.get("S3Bucket") == m.config.bucket_name
        and str(d.get("S3Prefix", "")).startswith(m.config.export_s3_prefix)
    ]
    return _latest(ours)


def export_view(desc: dict[str, Any] | None, recorded: dict[str, Any]) -> ExportView:
    """The export as AWS describes it; times the description lacks come from the local record of the same export."""
    if desc is None:
        return {**NO_EXPORT, "status": "not started", "origin": "aws"}
    same = recorded.get("arn") in (None, desc["ExportArn"])
    export_time, start_time = _when(desc.get("ExportTime")), _when(desc.get("StartTime"))
    origin = "aws"
    if (
        same
        and (export_time is None or start_time is None)
        and (recorded.get("export_time") or recorded.get("start_time"))
    ):
        export_time = export_time or recorded.get("export_time")
        start_time = start_time or recorded.get("start_time")
        origin = "aws; times recorded"
    completed = desc["ExportStatus"] == "COMPLETED"
    return ExportView(
        status=desc["ExportStatus"],
        arn=desc["ExportArn"],
        export_time=export_time,
        start_time=start_time,
        end_time=_when(desc.get("EndTime")),
        items=_int(desc.get("ItemCount")) if completed else None,
        bytes=_int(desc.get("BilledSizeBytes")) if completed else None,
        failure=desc.get("FailureMessage") or desc.get("FailureCode"),
        origin=origin,
        unavailable=None,
    )


def read_export(m: MigrationContext, state: MigrationState) -> ExportView:
    recorded = state.section("export")

    def describe() -> dict[str, Any] | None:
        if recorded.get("arn"):
            return dict(client(m.source, "dynamodb").describe_export(ExportArn=recorded["arn"])["ExportDescription"])
        return find_export(m)

    desc, why = attempt(describe)
    if why is not None:
        return {**NO_EXPORT, "arn": recorded.get("arn"), "unavailable": why}
    return export_view(desc, recorded)


# Import ---------------------------------------------------------------------------------------------
def _describe_import(m: MigrationContext, state: MigrationState, table_arn: str) -> dict[str, Any] | None:
    ddb = client(m.target, "dynamodb")
    arn = state.section("import").get("arn")
    if arn:
        return dict(ddb.describe_import(ImportArn=arn)["ImportTableDescription"])
    summaries = ddb.list_imports(TableArn=table_arn).get("ImportSummaryList", [])
    latest = _latest([dict(s) for s in summaries])
    if latest is None:
        return None
    return dict(ddb.describe_import(ImportArn=latest["ImportArn"])["ImportTableDescription"])


def _import(m: MigrationContext, state: MigrationState) -> ImportView:
    try:
        table = client(m.target, "dynamodb").describe_table(TableName=m.config.target_table_name)["Table"]
    except ClientError as err:
        if not is_not_found(err):
            raise
        return ImportView(
            status="not started", table="absent", imported=None, errors=None, origin="aws", unavailable=None
        )
    d = _describe_import(m, state, table["TableArn"])
    if d is not None:
        return ImportView(
            status=d["ImportStatus"],
            table=table["TableStatus"],
            imported=_int(d.get("ImportedItemCount")),
            errors=_int(d.get("ErrorCount")),
            origin="aws",
            unavailable=None,
        )
    recorded = state.section("import")
    return ImportView(
        status=recorded.get("status"),
        table=table["TableStatus"],
        imported=_int(recorded.get("imported")),
        errors=_int(recorded.get("errors")),
        origin="recorded",
        unavailable=None,
    )


def read_import(m: MigrationContext, state: MigrationState) -> ImportView:
    view, why = attempt(lambda: _import(m, state))
    if view is None:
        return ImportView(status=None, table=None, imported=None, errors=None, origin=None, unavailable=why)
    return view


# Replicator -----------------------------------------------------------------------------------------
def _mappings_of(lam: Any, function: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"FunctionName": function}
    while True:
        try:
            page = lam.list_event_source_mappings(**kwargs)
        except ClientError as err:
            if is_not_found(err):  # no such function: no mapping either
                return []
            raise
        found.extend(dict(x) for x in page.get("EventSourceMappings", []))
        if not page.get("NextMarker"):
            return found
        kwargs["Marker"] = page["NextMarker"]


def _recorded_mapping(
    lam: Any, state: MigrationState, section: str, output: str, function: str, stream: str | None = None
) -> dict[str, Any] | None:
    """A mapping by the UUID the Terraform outputs recorded, else the function's (on ``stream`` first)."""
    uuid = state.section(section).get(output)
    if uuid:
        try:
            return dict(lam.get_event_source_mapping(UUID=uuid))
        except ClientError as err:
            if not is_not_found(err):
                raise
    mappings = _mappings_of(lam, function)
    mine = [x for x in mappings if x.get("EventSourceArn") == stream] or mappings
    return mine[0] if mine else None


def find_mapping(m: MigrationContext, state: MigrationState) -> dict[str, Any] | None:
    """The replicator's mapping: by the UUID of the Terraform outputs, else by the function's name."""
    return _recorded_mapping(
        client(m.source, "lambda"),
        state,
        "source_outputs",
        "event_source_mapping_uuid",
        m.config.replicator_name,
        state.section("stream").get("arn"),
    )


def find_reverse_mapping(m: MigrationContext, state: MigrationState) -> dict[str, Any] | None:
    """The reverse replicator's mapping (target account): by the recorded UUID, else by the function's name."""
    return _recorded_mapping(
        client(m.target, "lambda"),
        state,
        "target_outputs",
        "reverse_event_source_mapping_uuid",
        m.config.reverse_replicator_name,
    )


def iterator_age_ms(m: MigrationContext) -> int | None:
    """The latest IteratorAge maximum of the last 10 minutes, or None when none was reported."""
    end = now()
    points = (
        client(m.source, "cloudwatch")
        .get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="IteratorAge",
            Dimensions=[{"Name": "FunctionName", "Value": m.config.replicator_name}],
            StartTime=end - dt.timedelta(minutes=10),
            EndTime=end,
            Period=60,
            Statistics=["Maximum"],
        )
        .get("Datapoints", [])
    )
    if not points:
        return None
    return int(max(points, key=lambda p: p["Timestamp"])["Maximum"])


def failures_waiting(m: MigrationContext) -> int:
    bucket = m.config.failure_bucket_name
    try:
        return len(failure_object_keys(client(m.source, "s3"), bucket))
    except ClientError as err:
        if error_code(err) in ("NoSuchBucket", "404"):
            raise Unavailable(f"the failure bucket {bucket} does not exist (phase 2 creates it)") from None
        raise


def read_replicator(m: MigrationContext, state: MigrationState) -> ReplicatorView:
    problems: list[str] = []
    mapping, mapping_why = attempt(lambda: find_mapping(m, state))
    if mapping_why:
        problems.append(f"event source mapping: {mapping_why}")
    age: int | None = None
    if mapping is not None:
        age, why = attempt(lambda: iterator_age_ms(m))
        if why:
            problems.append(f"iterator age: {why}")
    waiting, why = attempt(lambda: failures_waiting(m))
    if why:
        problems.append(f"failure destination: {why}")
    reverse, reverse_why = attempt(lambda: find_reverse_mapping(m, state))
    if reverse_why:
        problems.append(f"reverse event source mapping: {reverse_why}")
    local = state.section("replication")
    lag = local.get("local_lag_s")
    caught_up = local.get("local_caught_up")
    if caught_up and local.get("local_last_run"):
        # A run that caught up had applied every change up to its end: the target can be behind by at
        # most the time since then (the age of its last record only says when the source was last written).
        lag = max(0.0, (now() - parse_iso(local["local_last_run"])).total_seconds())
    return ReplicatorView(
        mapping=None if mapping_why else (mapping or {}).get("State", "absent"),
        mapping_uuid=(mapping or {}).get("UUID"),
        iterator_age_ms=age,
        local_lag_s=None if lag is None else float(lag),
        local_caught_up=None if caught_up is None else bool(caught_up),
        local_last_run=local.get("local_last_run"),
        failures_waiting=waiting,
        reverse_mapping=None if reverse_why else (reverse or {}).get("State", "absent"),
        reverse_mapping_uuid=(reverse or {}).get("UUID"),
        unavailable="; ".join(problems) or None,
    )


# Direction ------------------------------------------------------------------------------------------
def read_direction(m: MigrationContext, state: MigrationState, rep: ReplicatorView) -> DirectionView:
    """Which way replication runs, from both mappings as AWS shows them, beside what was recorded."""
    from ..dataplane.direction import current_direction

    recorded = state.section("cutover")
    forward_state, rev = rep["mapping"], rep["reverse_mapping"]
    unreadable = forward_state is None or rev is None
    cleanup = state.section("cleanup").get("removed")
    return DirectionView(
        current=None if unreadable else current_direction(forward_state, rev),
        recorded=str(recorded.get("direction") or "forward"),
        forward_mapping=forward_state,
        reverse_mapping=rev,
        history=[SwitchRecord(action=h["action"], at=h["at"], by=h["by"]) for h in recorded.get("history", [])],
        cleanup_removed={str(k): [str(x) for x in v] for k, v in cleanup.items()}
        if isinstance(cleanup, dict)
        else None,
        unavailable="an event source mapping could not be read (see the replicator)" if unreadable else None,
    )


# Deadline, verify, phases -------------------------------------------------------------------------
def deadline_view(
    export: ExportView, recorded: dict[str, Any], retention_hours: float, at: dt.datetime
) -> DeadlineView:
    """Export start (the earlier of ExportTime and StartTime) + the stream's retention, as a countdown."""
    none = DeadlineView(at=None, seconds_left=None, passed=None, unavailable=None)
    if export["status"] == "not started":
        return none
    times = [export["export_time"], export["start_time"]]
    if export["unavailable"]:
        times = [recorded.get("export_time"), recorded.get("start_time")]
    known = [parse_iso(t) for t in times if t]
    if not known:
        why = (
            "the export could not be read" if export["unavailable"] else "the export reports no ExportTime or StartTime"
        )
        return {**none, "unavailable": why}
    end = min(known) + dt.timedelta(hours=retention_hours)
    left = int((end - at).total_seconds())
    return DeadlineView(at=iso(end), seconds_left=left, passed=left <= 0, unavailable=None)


def verify_view(recorded: dict[str, Any]) -> VerifyView:
    counts = {k: _int(recorded.get(k)) for k in ("source_items", "target_items", "missing", "different", "extraneous")}
    diffs = [counts["missing"], counts["different"], counts["extraneous"]]
    clean = None if not recorded or None in diffs else not any(diffs)
    return VerifyView(
        at=recorded.get("at"),
        clean=clean,
        source_items=counts["source_items"],
        target_items=counts["target_items"],
        missing=counts["missing"],
        different=counts["different"],
        extraneous=counts["extraneous"],
    )


@dataclass(frozen=True)
class _Facts:
    """What was read from AWS, for each phase's :meth:`~migrator.phases.base.Phase.infer`."""

    export: ExportView
    import_: ImportView
    replicator: ReplicatorView
    bucket: Callable[[], str | None]

    def export_bucket(self) -> str | None:
        return self.bucket()


def inferred_phase(number: int, export: ExportView, imp: ImportView, rep: ReplicatorView, bucket: str | None) -> str:
    """A phase's state from what exists in AWS, for a machine without the local record."""
    return phase(number).infer(_Facts(export, imp, rep, lambda: bucket))


def export_bucket(m: MigrationContext) -> str:
    try:
        client(m.target, "s3").head_bucket(Bucket=m.config.bucket_name)
    except ClientError as err:
        if error_code(err) in ("404", "NoSuchBucket"):
            return "absent"
        raise
    return "present"


def phase_views(
    m: MigrationContext,
    state: MigrationState,
    export: ExportView,
    imp: ImportView,
    rep: ReplicatorView,
    lock: LockView,
) -> list[PhaseView]:
    bucket = functools.cache(lambda: attempt(lambda: export_bucket(m))[0])
    facts = _Facts(export, imp, rep, bucket)
    views: list[PhaseView] = []
    for p in PHASES:
        record = state.phase_record(p.number)
        if record.get("status"):
            status = str(record["status"])
            at, origin = record.get(f"{status.replace(' ', '_')}_at"), "recorded"
            if status == "in progress" and (not lock["held"] or lock["alive"] is False or p.infer(facts) == "done"):
                status = "interrupted"  # no run holds the migration, or AWS shows the step finished
        else:
            status, at, origin = p.infer(facts), None, "aws"
        account = " + ".join(p.roots)
        views.append(PhaseView(phase=p.number, name=p.name, account=account, status=status, at=at, origin=origin))
    return views


def read_lock(m: MigrationContext) -> LockView:
    holder, why = attempt(m.lock.holder)
    if why is not None:
        return LockView(held=None, holder=None, since=None, alive=None, unavailable=why)
    if holder is None:
        return LockView(held=False, holder=None, since=None, alive=None, unavailable=None)
    who = f"{holder.user}@{holder.host} (pid {holder.pid}, `{holder.command}`)"
    return LockView(held=True, holder=who, since=holder.since, alive=holder.alive(), unavailable=None)


def next_step(phases: list[PhaseView], lock: LockView) -> str | None:
    """What to run next when a run was interrupted (its lock left behind, or a phase left in progress)."""
    steps: list[str] = []
    if lock["held"] and lock["alive"] is False:
        steps.append(f"the lock of {lock['holder']} is left by a run that is gone: `migrator unlock --force`")
    for p in phases:
        if p["status"] == "interrupted":
            steps.append(f"phase {p['phase']} ({p['name']}) was interrupted: run `make phase-{p['phase']}` again")
    return "; then ".join(steps) or None


def handover_view(recorded: dict[str, Any]) -> HandoverView | None:
    if not recorded.get("at"):
        return None
    return {
        "address": recorded.get("address"),
        "file": recorded.get("file"),
        "at": recorded.get("at"),
        "by": recorded.get("by"),
    }


def collect_status(m: MigrationContext) -> StatusView:
    state = m.state.snapshot()  # read afresh (and once): --watch sees what other runs record meanwhile
    c = m.config
    export = read_export(m, state)
    imp = read_import(m, state)
    rep = read_replicator(m, state)
    lock = read_lock(m)
    phases = phase_views(m, state, export, imp, rep, lock)
    return {
        "migration": c.migration,
        "source": f"{c.source.account_id}/{c.source.region}/{c.source_table_name}",
        "target": f"{c.target.account_id}/{c.target.region}/{c.target_table_name}",
        "read_at": iso(now()),
        "phases": phases,
        "export": export,
        "import": imp,
        "replicator": rep,
        "direction": read_direction(m, state, rep),
        "stream_deadline": deadline_view(export, state.section("export"), c.stream_retention_hours, now()),
        "last_verify": verify_view(state.section("verify")),
        "lock": lock,
        "handover": handover_view(state.section("handover")),
        "next": next_step(phases, lock),
    }
