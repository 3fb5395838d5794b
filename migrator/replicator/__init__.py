"""The stream replicator: the Lambda package. One core that applies stream records to the target table,
two drivers (the Lambda handler here, the local runner in :mod:`migrator.dataplane.stream`), and the one
batch writer and reader of migrator (:mod:`.batch`).

This package is shipped alone as the Lambda's code (top-level package ``replicator`` in the zip), so it
imports only the standard library, boto3/botocore and its own modules, relatively; nothing of migrator
outside it. The rest of migrator imports from it (docs/architecture.md, "What may import what").
"""

from .batch import RetryPolicy
from .core import (
    ApplyResult,
    FailedKey,
    RecordError,
    apply_records,
    last_applied_sequence,
)

__all__ = [
    "ApplyResult",
    "FailedKey",
    "RecordError",
    "RetryPolicy",
    "apply_records",
    "last_applied_sequence",
]
