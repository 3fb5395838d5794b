"""One error classification for every AWS call migrator makes.

:func:`error_code` and :func:`is_retryable` are the replicator's own (the Lambda zip carries them, see
:mod:`migrator.replicator.batch`); the rest are what only migrator's side needs.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from ..replicator.batch import describe_error, error_code, is_retryable

__all__ = [
    "EXPIRED_CODES",
    "NOT_FOUND_CODES",
    "describe_error",
    "error_code",
    "is_expired",
    "is_not_found",
    "is_retryable",
]

#: What AWS answers when the thing asked about does not exist.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ExportNotFoundException",
        "ImportNotFoundException",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchEntity",
        "NotFound",
        "404",
    }
)
#: What AWS answers when the caller's credentials have expired.
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error_code(error) in NOT_FOUND_CODES


def is_expired(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error_code(error) in EXPIRED_CODES
