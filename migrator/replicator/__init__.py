"""The stream replicator: one core that applies stream records to the target table, two drivers.

This package is shipped alone as the Lambda's code (top-level package ``replicator``), so it imports
only the standard library, boto3/botocore and its own modules, relatively.
"""

from .core import (
    ApplyResult,
    FailedKey,
    RecordError,
    RetryPolicy,
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
