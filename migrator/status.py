"""`migrator status`: where a migration stands, read from AWS first and the local state second.

Everything that can be read from the accounts is (so the command works from any machine with the
config); what could not be read is shown with the reason, never silently left out.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .phases import PHASES
from .state import iso, now, parse_iso

if TYPE_CHECKING:
    from .migration import Migration


def _read(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        return {"unavailable": f"{err.operation_name}: {code}"}
    except BotoCoreError as err:
        return {"unavailable": type(err).__name__}


def _when(value: Any) -> str | None:
    return iso(value) if isinstance(value, dt.datetime) else (str(value) if value else None)


def read_export(m: Migration) -> dict[str, Any]:
    ddb = m.source.client("dynamodb")
    arn = m.state.section("export").get("arn")
    if not arn:
        table_arn = ddb.describe_table(TableName=m.config.source_table_name)["Table"]["TableArn"]
        exports = ddb.list_exports(TableArn=table_arn).get("ExportSummaries", [])
        mine = [e for e in exports if e.get("ExportStatus")]
        if not mine:
            return {"status": "not started"}
        arn = mine[-1]["ExportArn"]
    d = ddb.describe_export(ExportArn=arn)["ExportDescription"]
    return {"status": d["ExportStatus"], "arn": arn, "export_time": _when(d.get("ExportTime")),
            "start_time": _when(d.get("StartTime")), "items": d.get("ItemCount"), "bytes": d.get("BilledSizeBytes")}


def read_import(m: Migration) -> dict[str, Any]:
    ddb = m.target.client("dynamodb")
    try:
        table = ddb.describe_table(TableName=m.config.target_table_name)["Table"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return {"status": "not started", "table": "absent"}
        raise
    out: dict[str, Any] = {"table": table["TableStatus"]}
    if m.config.endpoint_url is None:  # moto has no ListImports
        imports = ddb.list_imports(TableArn=table["TableArn"]).get("ImportSummaryList", [])
        if imports:
            d = ddb.describe_import(ImportArn=imports[-1]["ImportArn"])["ImportTableDescription"]
            out.update(status=d["ImportStatus"], imported=d.get("ImportedItemCount"), errors=d.get("ErrorCount"))
            return out
    recorded = m.state.section("import")
    out.update(status=recorded.get("status", "unknown"), imported=recorded.get("imported"),
               errors=recorded.get("errors"))
    return out


def read_replicator(m: Migration) -> dict[str, Any]:
    lam = m.source.client("lambda")
    mappings = lam.list_event_source_mappings(FunctionName=m.config.replicator_name).get("EventSourceMappings", [])
    if not mappings:
        return {"mapping": "absent"}
    mapping = mappings[0]
    out: dict[str, Any] = {"mapping": mapping.get("State"), "uuid": mapping.get("UUID")}
    stats = m.source.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="IteratorAge",
        Dimensions=[{"Name": "FunctionName", "Value": m.config.replicator_name}],
        StartTime=now() - dt.timedelta(minutes=10), EndTime=now(), Period=60, Statistics=["Maximum"],
    ).get("Datapoints", [])
    if stats:
        latest = max(stats, key=lambda p: p["Timestamp"])
        out["iterator_age_ms"] = int(latest["Maximum"])
    else:
        out["iterator_age_ms"] = None
    local = m.state.section("replication")
    if local.get("local_lag_s") is not None:
        out["local_lag_s"] = local["local_lag_s"]
        out["local_caught_up"] = local.get("local_caught_up")
    from .redrive import failure_object_keys  # every object but those under redriven/, all pages

    try:
        out["failures_waiting"] = len(failure_object_keys(m.source.client("s3"), m.config.failure_bucket_name))
    except ClientError as err:
        out["failures_waiting"] = f"unavailable: {err.response.get('Error', {}).get('Code')}"
    return out


def collect_status(m: Migration) -> dict[str, Any]:
    state = m.state
    phases = []
    for p in PHASES:
        record = state.section("phases").get(str(p.number), {})
        status = record.get("status", "not started")
        when = record.get(f"{status.replace(' ', '_')}_at")
        phases.append({"phase": p.number, "name": p.name, "account": p.account, "status": status, "at": when})
    export = _read(lambda: read_export(m))
    deadline = None
    start = export.get("start_time") or state.section("export").get("start_time")
    if start:
        end = parse_iso(start) + dt.timedelta(hours=m.config.stream_retention_hours)
        left = int((end - now()).total_seconds())
        deadline = {"at": iso(end), "seconds_left": left, "passed": left <= 0}
    return {
        "migration": m.config.migration,
        "source": f"{m.config.source.account_id}/{m.config.source.region}/{m.config.source_table_name}",
        "target": f"{m.config.target.account_id}/{m.config.target.region}/{m.config.target_table_name}",
        "phases": phases,
        "export": export,
        "import": _read(lambda: read_import(m)),
        "replicator": _read(lambda: read_replicator(m)),
        "stream_deadline": deadline,
        "last_verify": state.section("verify") or None,
        "read_at": iso(now()),
    }


def _countdown(seconds: int) -> str:
    if seconds <= 0:
        return "PASSED — start again from a new export"
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min left"


def render_status(s: dict[str, Any]) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("migration", s["migration"], "source", s["source"], "target", s["target"])
    phases = Table(title="phases", expand=False)
    for col in ("#", "name", "account", "state", "when"):
        phases.add_column(col)
    for p in s["phases"]:
        phases.add_row(str(p["phase"]), p["name"], p["account"], p["status"], p["at"] or "")
    facts = Table(title="data", expand=False)
    facts.add_column("what")
    facts.add_column("state")
    for section in ("export", "import", "replicator"):
        value = s[section]
        facts.add_row(section, ", ".join(f"{k}={v}" for k, v in value.items() if k != "arn"))
    deadline = s["stream_deadline"]
    facts.add_row("stream deadline",
                  f"{deadline['at']} ({_countdown(deadline['seconds_left'])})" if deadline else "export not started")
    verify = s["last_verify"]
    facts.add_row("last verify", ", ".join(f"{k}={v}" for k, v in verify.items()) if verify else "never run")
    return Group(head, phases, facts)


def show_status(m: Migration, *, as_json: bool, watch: bool, interval: float = 5.0) -> None:
    if as_json:
        sys.stdout.write(json.dumps(collect_status(m), sort_keys=True, default=str) + "\n")
        return
    out = Console()
    if not watch:
        out.print(render_status(collect_status(m)))
        return
    with Live(render_status(collect_status(m)), console=out, refresh_per_second=1) as live:
        while True:
            time.sleep(interval)
            live.update(render_status(collect_status(m)))
