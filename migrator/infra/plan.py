"""What a saved Terraform plan would do, read from ``terraform show -json``: pure functions over the JSON.

:func:`destructive_table_changes` is the table guard's eye (docs/architecture.md, invariant 6): the
runner refuses to apply any plan in which it finds a DynamoDB table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    actions: tuple[str, ...]

    @property
    def kind(self) -> str:
        a = set(self.actions)
        if a == {"delete", "create"}:
            return "replace"
        if a == {"create"}:
            return "add"
        if a == {"delete"}:
            return "destroy"
        if a == {"update"}:
            return "change"
        if a <= {"no-op", "read"}:
            return "no-op"
        return "+".join(self.actions)


def resource_changes(plan_json: Mapping[str, Any]) -> list[ResourceChange]:
    out = []
    for rc in plan_json.get("resource_changes", []) or []:
        actions = tuple(rc.get("change", {}).get("actions", []))
        out.append(ResourceChange(rc["address"], rc["type"], actions))
    return out


def destructive_table_changes(plan_json: Mapping[str, Any]) -> list[ResourceChange]:
    """DynamoDB tables the plan would destroy or replace."""
    return [rc for rc in resource_changes(plan_json) if rc.type == "aws_dynamodb_table" and "delete" in rc.actions]


def count_changes(plan_json: Mapping[str, Any]) -> dict[str, int]:
    counts = {"add": 0, "change": 0, "replace": 0, "destroy": 0}
    for rc in resource_changes(plan_json):
        if rc.kind in counts:
            counts[rc.kind] += 1
    return counts


@dataclass(frozen=True)
class PlanReport:
    """One root's plan in one phase, as the CLI shows it (text, markdown for a PR, JSON)."""

    phase: int
    name: str
    account: str
    account_id: str
    root: str
    workspace: str
    has_changes: bool
    counts: dict[str, int]
    changes: list[tuple[str, str]]  # (kind, address), no-ops left out
    table_replacements: list[str]
    text: str


def report(
    plan_json: Mapping[str, Any],
    *,
    phase: int,
    name: str,
    account: str,
    account_id: str,
    root: str,
    workspace: str,
    has_changes: bool,
    text: str,
) -> PlanReport:
    return PlanReport(
        phase=phase,
        name=name,
        account=account,
        account_id=account_id,
        root=root,
        workspace=workspace,
        has_changes=has_changes,
        counts=count_changes(plan_json),
        changes=[(rc.kind, rc.address) for rc in resource_changes(plan_json) if rc.kind != "no-op"],
        table_replacements=[rc.address for rc in destructive_table_changes(plan_json)],
        text=text,
    )
