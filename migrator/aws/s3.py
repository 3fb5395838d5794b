"""S3 reads and deletes shared by redrive, status and cleanup: the failure records that wait, and emptying
a versioned bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .errors import error_code

#: Where redrive moves a failure record it has handled (copy, then delete).
REDRIVEN_PREFIX = "redriven/"
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})


def failure_object_keys(s3: Any, bucket: str) -> list[str]:
    """Every failure record waiting in ``bucket``: all objects but those under ``redriven/``."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            name = str(obj["Key"])
            if not name.startswith(REDRIVEN_PREFIX) and not name.endswith("/"):
                keys.append(name)
    return keys


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        if error_code(err) in MISSING_BUCKET_CODES:
            return False
        raise
    return True


def object_versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every version and delete marker of ``bucket``: ``{"Key", "VersionId", "IsLatest", "marker"}``."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
            for v in page.get(kind, []):
                found.append(
                    {
                        "Key": v["Key"],
                        "VersionId": v.get("VersionId"),
                        "IsLatest": bool(v.get("IsLatest")),
                        "marker": marker,
                    }
                )
    return found


def empty_bucket(s3: Any, bucket: str, *, refuse: Callable[[str], bool] | None = None) -> int:
    """Delete every object version and delete marker of ``bucket`` (it is versioned); the number deleted.

    ``refuse(key)`` names current objects that must not be deleted: when one is there, nothing is deleted
    and ``ValueError(key)`` is raised. A missing bucket is empty.
    """
    if not bucket_exists(s3, bucket):
        return 0
    versions = object_versions(s3, bucket)
    if refuse is not None:
        for v in versions:
            if v["IsLatest"] and not v["marker"] and refuse(v["Key"]):
                raise ValueError(v["Key"])
    deleted = 0
    for start in range(0, len(versions), 1000):
        chunk = versions[start : start + 1000]
        objects = [{"Key": v["Key"], **({"VersionId": v["VersionId"]} if v["VersionId"] else {})} for v in chunk]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise ClientError(
                {
                    "Error": {
                        "Code": first.get("Code", "DeleteFailed"),
                        "Message": f"{first.get('Key')}: {first.get('Message')}",
                    }
                },
                "DeleteObjects",
            )
        deleted += len(chunk)
    return deleted
