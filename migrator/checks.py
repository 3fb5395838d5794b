"""`migrator verify [--repair]` wired to the migration's accounts, with its result kept in the state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .state import iso, now

if TYPE_CHECKING:
    from .migration import Migration


def key_names(m: Migration) -> list[str]:
    desc = m.source.client("dynamodb").describe_table(TableName=m.config.source_table_name)["Table"]
    return [k["AttributeName"] for k in sorted(desc["KeySchema"], key=lambda k: k["KeyType"])]


def _verify_once(m: Migration, keys: list[str], segments: int, workers: int) -> Any:
    from .verify import verify_tables

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=m.console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(side: str, count: int) -> None:
            if side not in tasks:
                tasks[side] = bar.add_task(f"scanning {side}", total=None)
            bar.update(tasks[side], completed=count)

        return verify_tables(
            m.source.client("dynamodb"),
            m.config.source_table_name,
            m.target.client("dynamodb"),
            m.config.target_table_name,
            key_names=keys,
            segments=segments,
            workers=workers,
            progress=progress,
        )


def result_table(result: Any, title: str) -> Table:
    data = result.to_json()
    table = Table(title=title)
    for name in ("source_items", "target_items", "missing", "different", "extraneous"):
        table.add_column(name, justify="right")
    table.add_row(*(str(data[n]) for n in ("source_items", "target_items", "missing", "different", "extraneous")))
    return table


def run_verify(m: Migration, *, repair: bool, segments: int, workers: int, as_json: bool) -> Any:
    from .verify import repair as repair_keys

    keys = key_names(m)
    result = _verify_once(m, keys, segments, workers)
    if not as_json:
        m.console.print(result_table(result, "verify"))
    if repair and not result.clean:
        fixed = repair_keys(
            m.source.client("dynamodb"),
            m.config.source_table_name,
            m.target.client("dynamodb"),
            m.config.target_table_name,
            result.differing_keys,
        )
        m.console.print(f"repair: {fixed}")
        result = _verify_once(m, keys, segments, workers)
        if not as_json:
            m.console.print(result_table(result, "verify after repair"))
    m.state.update("verify", at=iso(now()), **{k: v for k, v in result.to_json().items() if k != "examples"})
    return result
