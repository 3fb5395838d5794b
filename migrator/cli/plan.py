"""`migrator plan --phase N | --all`: the Terraform plan of a phase (or of every phase), changing nothing;
as plain text for a terminal, markdown for a pull-request comment, JSON for scripts.

``--all`` is the one pull-request comment of a config: every phase in order; a phase that cannot be
planned yet (it needs what an earlier phase records) says why in one sentence.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import MigratorError
from ..infra.plan import PlanReport
from ..phases import PHASES, Phase
from ..phases.runner import PhaseRunner
from .app import PHASE_HELP, ConfigOption, app, context, err_console, guarded

KINDS = ("add", "change", "replace", "destroy")
SYMBOLS = {"add": "+", "change": "~", "replace": "-/+", "destroy": "-"}


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
@guarded
def plan(
    phase: Annotated[
        int | None,
        typer.Option("--phase", "-p", min=PHASES[0].number, max=PHASES[-1].number, help=PHASE_HELP),
    ] = None,
    all_phases: Annotated[bool, typer.Option("--all", help="Plan every phase, in order (one PR comment).")] = False,
    config: ConfigOption = Path("migration.yaml"),
    format: Annotated[PlanFormat, typer.Option("--format", help="text, markdown (for a PR comment) or json.")] = (
        PlanFormat.text
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the summary to a file.")] = None,
) -> None:
    """Show the Terraform plan of a phase (or of every phase) without changing anything."""
    if (phase is None) == (not all_phases):
        raise MigratorError("name one phase with --phase N, or every phase with --all")
    runner = PhaseRunner(context(config))
    if phase is not None:
        text = "".join(render_plan(report, format.value) for report in runner.plan(phase))
        first_failed = False
    else:
        text, first_failed = plan_all(runner, format.value)
    if output:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"plan summary written to {output}")
    else:
        sys.stdout.write(text)
    if first_failed:
        raise typer.Exit(1)  # the first phase needs nothing recorded: its plan must work


def plan_all(runner: PhaseRunner, fmt: str) -> tuple[str, bool]:
    """Every phase's plan, rendered; and whether the first phase could not be planned."""
    parts: list[str] = []
    first_failed = False
    for p in PHASES:
        try:
            parts += [render_plan(report, fmt) for report in runner.plan(p.number)]
        except MigratorError as err:
            parts.append(render_unplanned(p, str(err), fmt))
            first_failed = first_failed or p == PHASES[0]
    return "".join(parts), first_failed


def render_unplanned(p: Phase, reason: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"phase": p.number, "name": p.name, "planned": False, "reason": reason}) + "\n"
    if fmt == "markdown":
        return f"### migrator plan: Phase {p.number} ({p.name}) — not planned yet\n\n{reason}\n\n"
    return f"Phase {p.number} ({p.name}): not planned yet — {reason}\n"


def render_plan(report: PlanReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan_dict(report), sort_keys=True) + "\n"
    if fmt == "markdown":
        return plan_markdown(report)
    return plan_text(report)


def plan_dict(report: PlanReport) -> dict[str, object]:
    return {
        "phase": report.phase,
        "name": report.name,
        "account": report.account,
        "account_id": report.account_id,
        "root": f"terraform/{report.root}",
        "workspace": report.workspace,
        "has_changes": report.has_changes,
        "counts": report.counts,
        "changes": [{"action": k, "address": a} for k, a in report.changes],
        "table_replacements": report.table_replacements,
    }


def _headline(report: PlanReport) -> str:
    return (
        f"Phase {report.phase} ({report.name}) — {report.account} account {report.account_id}, "
        f"root terraform/{report.root}, workspace {report.workspace}"
    )


def plan_text(report: PlanReport) -> str:
    lines = [_headline(report)]
    lines.append("Plan: " + ", ".join(f"{report.counts[k]} to {k}" for k in KINDS))
    for kind, address in report.changes:
        lines.append(f"  {SYMBOLS.get(kind, '?'):>3} {address} ({kind})")
    for address in report.table_replacements:
        lines.append(f"!!! {address}: this plan DESTROYS OR REPLACES a DynamoDB table; apply refuses it")
    if not report.has_changes:
        lines.append("No changes.")
    return "\n".join(lines) + "\n"


def plan_markdown(report: PlanReport) -> str:
    lines = [f"### migrator plan: {_headline(report)}", ""]
    if report.table_replacements:
        lines += [
            "> [!CAUTION]",
            "> **This plan destroys or replaces a DynamoDB table** — `migrator apply` refuses it (migrator "
            "never deletes the source or the target table):",
        ]
        lines += [f"> - `{a}`" for a in report.table_replacements]
        lines.append("")
    lines += ["| add | change | replace | destroy |", "|---:|---:|---:|---:|"]
    lines.append("| " + " | ".join(str(report.counts[k]) for k in KINDS) + " |")
    lines.append("")
    if report.changes:
        lines += ["<details><summary>Resources</summary>", "", "| action | address |", "|---|---|"]
        lines += [f"| {k} | `{a}` |" for k, a in report.changes]
        lines += ["", "</details>"]
    else:
        lines.append("No changes.")
    return "\n".join(lines) + "\n"
