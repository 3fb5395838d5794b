"""DynamoDB calls migrator makes on whole tables: the one batch read and write, counts, key schemas.

The batch calls and their retry policy are the replicator's (:mod:`migrator.replicator.batch`: the
Lambda zip must carry them alone), so verify, repair, redrive and the replicator retry the same way,
with the limits of the configuration's ``retry:`` section.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from ..replicator.batch import (
    DEFAULT_RETRY,
    MAX_BATCH_GET,
    MAX_BATCH_WRITE,
    GetOutcome,
    RetryPolicy,
    WriteFailure,
    WriteOutcome,
    get_batch,
    write_batch,
)

__all__ = [
    "DEFAULT_RETRY",
    "MAX_BATCH_GET",
    "MAX_BATCH_WRITE",
    "GetOutcome",
    "RetryPolicy",
    "WriteFailure",
    "WriteOutcome",
    "chunks",
    "count_items",
    "get_batch",
    "table_key_names",
    "write_batch",
]

T = TypeVar("T")


def chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``values`` in consecutive slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def table_key_names(client: Any, table: str) -> list[str]:
    """The key attribute names of ``table`` (hash key first)."""
    schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
    ordered = sorted(schema, key=lambda element: element["KeyType"] != "HASH")
    return [str(element["AttributeName"]) for element in ordered]


def count_items(client: Any, table: str) -> int:
    """Every item of ``table``, counted with a paginated ``Select=COUNT`` scan."""
    total = 0
    for page in client.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += int(page["Count"])
    return total
