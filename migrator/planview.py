"""Plan summaries: plain text for a terminal, markdown for a pull-request comment, JSON for scripts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .migration import PlanReport

KINDS = ("add", "change", "replace", "destroy")
SYMBOLS = {"add": "+", "change": "~", "replace": "-/+", "destroy": "-"}


def render_plan(report: PlanReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan_dict(report), sort_keys=True) + "\n"
    if fmt == "markdown":
        return plan_markdown(report)
    return plan_text(report)


def plan_dict(report: PlanReport) -> dict[str, object]:
    return {
        "phase": report.phase.number,
        "name": report.phase.name,
        "account": report.phase.account,
        "account_id": report.account_id,
        "root": f"terraform/{report.phase.root}",
        "workspace": report.workspace,
        "has_changes": report.has_changes,
        "counts": report.counts,
        "changes": [{"action": k, "address": a} for k, a in report.changes],
        "table_replacements": report.table_replacements,
    }


def _headline(report: PlanReport) -> str:
    p = report.phase
    return (
        f"Phase {p.number} ({p.name}) — {p.account} account {report.account_id}, root terraform/{p.root}, "
        f"workspace {report.workspace}"
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
            "> **This plan destroys or replaces a DynamoDB table** — `migrator apply` refuses it unless "
            "`--allow-table-replace` is given:",
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
