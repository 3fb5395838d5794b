"""`migrator status [--json] [--watch]`: the status read model (:mod:`migrator.readmodels.status`) rendered
as rich tables, or as one JSON object per refresh."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..clock import parse_iso
from ..context import MigrationContext
from ..readmodels.status import collect_status
from ..readmodels.views import (
    DeadlineView,
    DirectionView,
    ExportView,
    ImportView,
    LockView,
    ReplicatorView,
    StatusView,
    VerifyView,
)
from .app import ConfigOption, JsonOption, app, context, guarded


@app.command()
@guarded
def status(
    config: ConfigOption = Path("migration.yaml"),
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh live until interrupted.")] = False,
) -> None:
    """Where the migration stands: phases, export, import, replicator, deadline, last verify."""
    show_status(context(config), as_json=as_json, watch=watch)


def countdown(seconds: int) -> str:
    if seconds <= 0:
        return "PASSED — records are trimmed from the stream: start again from a new export"
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min left"


def _size(n: int | None) -> str:
    if n is None:
        return "? bytes"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short(ts: str | None) -> str:
    """An ISO time as an operator reads it: UTC to the second."""
    return parse_iso(ts).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else ""


def _line(parts: list[str | None], unavailable: str | None) -> Text:
    text = Text(" · ".join(p for p in parts if p))
    if unavailable:
        text.append(("; " if text.plain else "") + "unavailable: ", style="bold red")
        text.append(unavailable)
    return text


def export_line(e: ExportView) -> Text:
    if e["status"] is None:
        return _line([], e["unavailable"])
    if e["status"] == "not started":
        return _line(["not started"], None)
    return _line(
        [
            e["status"],
            f"ExportTime {short(e['export_time']) or 'unknown'}" + (" (local record)" if e["origin"] != "aws" else ""),
            f"{e['items']} items, {_size(e['bytes'])}" if e["items"] is not None else None,
            f"failure: {e['failure']}" if e["failure"] else None,
        ],
        None,
    )


def import_line(i: ImportView) -> Text:
    if i["status"] is None and i["table"] is None:
        return _line([], i["unavailable"])
    return _line(
        [
            i["status"] or "unknown",
            f"target table {i['table']}",
            f"{i['imported']} imported, {i['errors']} errors" if i["imported"] is not None else None,
            f"({i['origin']})" if i["origin"] != "aws" else None,
        ],
        i["unavailable"],
    )


def replicator_line(r: ReplicatorView) -> Text:
    age = r["iterator_age_ms"]
    lag = r["local_lag_s"]
    local = None
    if lag is not None:
        local = f"local runner lag {lag:.1f} s, {'caught up' if r['local_caught_up'] else 'not caught up'}"
    return _line(
        [
            f"mapping {r['mapping']}" if r["mapping"] else None,
            f"iterator age {age / 1000:.1f} s" if age is not None else "no iterator age reported",
            local,
            f"{r['failures_waiting']} failures waiting" if r["failures_waiting"] is not None else None,
            f"reverse mapping {r['reverse_mapping']}" if r["reverse_mapping"] not in (None, "absent") else None,
        ],
        r["unavailable"],
    )


def direction_line(d: DirectionView) -> Text:
    current = d["current"]
    if current is not None and current != d["recorded"]:
        current = f"{current} (recorded: {d['recorded']})"
    return _line(
        [
            f"{current}" if current else None,
            f"forward mapping {d['forward_mapping']}" if d["forward_mapping"] else None,
            f"reverse mapping {d['reverse_mapping']}" if d["reverse_mapping"] else None,
        ],
        d["unavailable"],
    )


def history_line(d: DirectionView) -> Text:
    parts = [f"{h['action']} at {short(h['at'])} by {h['by']}" for h in d["history"]]
    if d["cleanup_removed"] is not None:
        removed = ", ".join(f"{len(v)} in the {root} account" for root, v in sorted(d["cleanup_removed"].items()))
        parts.append(f"cleanup removed {removed}")
    return Text("; ".join(parts) or "no cutover yet")


def deadline_line(d: DeadlineView) -> Text:
    if d["at"] is None or d["seconds_left"] is None:
        return _line([] if d["unavailable"] else ["export not started"], d["unavailable"])
    return Text(f"{short(d['at'])} ({countdown(d['seconds_left'])})", style="bold red" if d["passed"] else "")


def verify_line(v: VerifyView) -> Text:
    if v["at"] is None:
        return Text("never run")
    verdict = "clean" if v["clean"] else "NOT clean"
    return Text(
        f"{verdict} at {short(v['at'])}: {v['source_items']} source / {v['target_items']} target items, "
        f"{v['missing']} missing, {v['different']} different, {v['extraneous']} extraneous"
    )


def lock_line(lk: LockView) -> Text:
    if lk["held"] is None:
        return _line([], lk["unavailable"])
    if not lk["held"]:
        return Text("free")
    gone = {True: "running", False: "its process is gone", None: "on another host"}[lk["alive"]]
    return Text(f"held by {lk['holder']} since {short(lk['since'])} ({gone})", style="bold" if lk["alive"] else "")


def render_status(s: StatusView) -> Group:
    head = Text.assemble((s["migration"], "bold"), f"  source {s['source']} → target {s['target']}")
    read = Text(f"read at {short(s['read_at'])}", style="dim")
    phases = Table(title="phases", title_justify="left")
    for col in ("#", "name", "account", "state", "when", "from"):
        phases.add_column(col)
    for p in s["phases"]:
        phases.add_row(str(p["phase"]), p["name"], p["account"], p["status"], short(p["at"]), p["origin"])
    data = Table(title="data", title_justify="left")
    data.add_column("what", no_wrap=True)
    data.add_column("state")
    data.add_row("export", export_line(s["export"]))
    data.add_row("import", import_line(s["import"]))
    data.add_row("replicator", replicator_line(s["replicator"]))
    data.add_row("direction", direction_line(s["direction"]))
    data.add_row("cutover", history_line(s["direction"]))
    data.add_row("stream deadline", deadline_line(s["stream_deadline"]))
    data.add_row("last verify", verify_line(s["last_verify"]))
    data.add_row("lock", lock_line(s["lock"]))
    ho = s["handover"]
    data.add_row("handover", f"{ho['address']} → {ho['file']} at {short(ho['at'])} by {ho['by']}" if ho else "not yet")
    parts: list[Text | Table] = [head, read, phases, data]
    if s["next"]:
        parts.append(Text.assemble(("next: ", "bold yellow"), s["next"]))
    return Group(*parts)


@contextmanager
def _until_interrupted() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:  # the way out of --watch: not an error
        return


def show_status(
    m: MigrationContext, *, as_json: bool, watch: bool, interval: float = 5.0, rounds: int | None = None
) -> None:
    """Print the status once, or (``watch``) every ``interval`` seconds until interrupted or ``rounds`` are done."""
    total = rounds if watch else 1
    if as_json:
        with _until_interrupted():
            done = 0
            while total is None or done < total:
                if done:
                    time.sleep(interval)
                sys.stdout.write(json.dumps(collect_status(m), sort_keys=True, default=str) + "\n")
                sys.stdout.flush()
                done += 1
        return
    out = Console()
    if not watch:
        out.print(render_status(collect_status(m)))
        return
    with _until_interrupted(), Live(render_status(collect_status(m)), console=out, refresh_per_second=1) as live:
        done = 1
        while total is None or done < total:
            time.sleep(interval)
            live.update(render_status(collect_status(m)))
            done += 1
