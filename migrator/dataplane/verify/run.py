"""`migrator verify [--repair]` wired to a migration's accounts, with its result kept in the state."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...aws.dynamodb import table_key_names
from ...clock import iso, now
from .engine import Progress, RepairResult, VerifyEngine, VerifyResult
from .repair import repair as repair_keys
from .scan import ScanEngine

if TYPE_CHECKING:
    from ...context import MigrationContext


@dataclass(frozen=True)
class VerifyRun:
    """A verify, and when ``--repair`` found differences, the repair and the verify after it."""

    first: VerifyResult
    repair: RepairResult | None = None
    after_repair: VerifyResult | None = None

    @property
    def result(self) -> VerifyResult:
        """The last verify: what the command's exit code and ``--json`` report."""
        return self.after_repair or self.first


def _compare(ctx: MigrationContext, engine: VerifyEngine, key_names: list[str]) -> VerifyResult:
    with ctx.report.live() as board:
        tasks = {}

        def progress(stage: str, count: int) -> None:
            if stage not in tasks:
                tasks[stage] = board.add(f"scanning {stage}")
            tasks[stage].update(completed=count)

        typed: Progress = progress
        return engine.compare(
            ctx.source.client("dynamodb"),
            ctx.config.source_table_name,
            ctx.target.client("dynamodb"),
            ctx.config.target_table_name,
            key_names=key_names,
            progress=typed,
        )


def run_verify(ctx: MigrationContext, *, repair: bool = False, engine: VerifyEngine | None = None) -> VerifyRun:
    """Verify the tables (``engine``: the scan engine by default); with ``repair``, fix and verify again.

    The last verify is recorded in the state (``verify`` section), where status and the gate read it.
    """
    chosen: VerifyEngine = engine or ScanEngine(retry=ctx.retry)
    key_names = table_key_names(ctx.source.client("dynamodb"), ctx.config.source_table_name)
    with ctx.lock.held("migrator verify --repair") if repair else contextlib.nullcontext():
        run = VerifyRun(_compare(ctx, chosen, key_names))
        if repair and not run.first.clean:
            fixed = repair_keys(
                ctx.source.client("dynamodb"),
                ctx.config.source_table_name,
                ctx.target.client("dynamodb"),
                ctx.config.target_table_name,
                run.first.differing_keys,
                retry=ctx.retry,
            )
            run = VerifyRun(run.first, fixed, _compare(ctx, chosen, key_names))
    recorded = {k: v for k, v in run.result.to_json().items() if k != "examples"}
    ctx.state.update("verify", at=iso(now()), **recorded)
    return run
