"""`migrator plan --phase N`: the Terraform plan of a phase, changing nothing; as plain text for a
terminal, markdown for a pull-request comment, JSON for scripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..infra.plan import PlanReport
from ..phases.runner import PhaseRunner
from .app import ConfigOption, PhaseOption, app, context, err_console, guarded

KINDS = ("add", "change", "replace", "destroy")
SYMBOLS = {"add": "+", "change": "~", "replace": "-/+", "destroy": "-"}


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
@guarded
def plan(
    phase: PhaseOption,
    config: ConfigOption = Path("migration.yaml"),
    format: Annotated[PlanFormat, typer.Option("--format", help="text, markdown (for a PR comment) or json.")] = (
        PlanFormat.text
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the summary to a file.")] = None,
) -> None:
    """Show the Terraform plan of a phase without changing anything."""
    reports = PhaseRunner(context(config)).plan(phase)
    text = "".join(render_plan(report, format.value) for report in reports)
    if output:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"plan summary written to {output}")
    else:
        sys.stdout.write(text)


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
