"""Plan summaries for terminals, pull requests and scripts."""

from __future__ import annotations

import json

from migrator.cli.plan import render_plan
from migrator.infra.plan import PlanReport
from migrator.phases import phase


def report(**overrides: object) -> PlanReport:
    p = phase(3)
    values: dict[str, object] = {
        "phase": p.number,
        "name": p.name,
        "account": p.roots[0],
        "root": p.roots[0],
        "account_id": "111111111111",
        "workspace": "orders-move",
        "has_changes": True,
        "counts": {"add": 1, "change": 1, "replace": 0, "destroy": 0},
        "changes": [("add", "module.table[0].aws_dynamodb_table.this"), ("change", "module.bucket.aws_s3_bucket.this")],
        "table_replacements": [],
        "text": "",
    }
    values.update(overrides)
    return PlanReport(**values)  # type: ignore[arg-type]


def test_markdown_names_account_workspace_and_counts() -> None:
    text = render_plan(report(), "markdown")
    assert "target account 111111111111" in text and "workspace orders-move" in text
    assert "| 1 | 1 | 0 | 0 |" in text
    assert "`module.table[0].aws_dynamodb_table.this`" in text
    assert "CAUTION" not in text


def test_markdown_flags_table_replacement_loudly() -> None:
    text = render_plan(
        report(
            counts={"add": 0, "change": 0, "replace": 1, "destroy": 0},
            changes=[("replace", "module.table[0].aws_dynamodb_table.this")],
            table_replacements=["module.table[0].aws_dynamodb_table.this"],
        ),
        "markdown",
    )
    assert text.splitlines()[2] == "> [!CAUTION]"
    assert "destroys or replaces a DynamoDB table" in text and "`migrator apply` refuses it" in text


def test_text_and_json_agree() -> None:
    r = report(table_replacements=["t"])
    assert "DESTROYS OR REPLACES" in render_plan(r, "text")
    data = json.loads(render_plan(r, "json"))
    assert data["counts"] == r.counts and data["table_replacements"] == ["t"] and data["phase"] == 3


def test_no_changes_is_said() -> None:
    r = report(has_changes=False, counts={"add": 0, "change": 0, "replace": 0, "destroy": 0}, changes=[])
    assert "No changes." in render_plan(r, "markdown") and "No changes." in render_plan(r, "text")
