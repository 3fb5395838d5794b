"""Helpers for tests that run migrations against the session's emulator."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from migrator.context import MigrationContext, Waits
from migrator.phases import ApplyOptions
from migrator.phases.runner import PhaseRunner

from .conftest import REGION, SOURCE_ACCOUNT, TARGET_ACCOUNT


def write_config(directory: Path, endpoint: str, migration: str, table: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "migration": migration,
        "source": {
            "account_id": SOURCE_ACCOUNT,
            "region": REGION,
            "table": table,
            "role_arn": f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops",
        },
        "target": {
            "account_id": TARGET_ACCOUNT,
            "region": REGION,
            "role_arn": f"arn:aws:iam::{TARGET_ACCOUNT}:role/Ops",
        },
        "endpoint_url": endpoint,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = directory / "migration.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def migration(config_path: Path) -> MigrationContext:
    """The migration of ``config_path``, quiet, with a short export poll."""
    m = MigrationContext.load(config_path)
    m.waits = Waits(export_poll_s=0.2)
    return m


def apply(m: MigrationContext, number: int, **options: bool) -> None:
    """`migrator apply --phase N` on ``m`` (``options``: enable_stream, enable_pitr)."""
    PhaseRunner(m).apply(number, ApplyOptions(**options))


def fill(ddb: Any, table: str, count: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    for start in range(0, count, 25):
        batch = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": f"p{n % 17}"},
                        "sk": {"S": f"s{n:05d}"},
                        "n": {"N": str(rng.randint(0, 10**9))},
                        "b": {"B": rng.randbytes(8)},
                    }
                }
            }
            for n in range(start, min(start + 25, count))
        ]
        pending: dict[str, Any] = {table: batch}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`migrator ARGS` run in ``directory``, as an operator would, from the migration.yaml there."""
    return subprocess.run(
        [sys.executable, "-m", "migrator.cli", *args], cwd=directory, capture_output=True, text=True, check=False
    )
