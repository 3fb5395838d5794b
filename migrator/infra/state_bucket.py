"""The state bucket: created by the first apply when missing, hardened; used as it is when it exists.

It holds every migration's Terraform state and migration document, so it is created with boto3 (not
with Terraform, whose state it keeps): versioning on (every earlier state and document can be
restored), encryption at rest (SSE-S3), public access blocked, bucket-owner-enforced ownership, and a
policy that denies every request not made over TLS. A configured bucket that exists is used as it is;
one owned by another account than the one named in ``state.account`` is refused.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from ..aws.errors import error_code
from ..config import MigrationConfig
from ..errors import MigratorError


def tls_only_policy(bucket: str, partition: str) -> str:
    arn = f"arn:{partition}:s3:::{bucket}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def bucket_state(s3: Any, bucket: str, owner: str) -> str:
    """``present`` (owned by ``owner``), ``absent``, or ``foreign`` (another account owns the name)."""
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    except ClientError as err:
        code = error_code(err)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return "absent"
        if code in ("403", "AccessDenied", "Forbidden"):
            return "foreign"
        raise
    owned = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    return "present" if bucket in owned else "foreign"


def refuse_foreign(config: MigrationConfig) -> MigratorError:
    return MigratorError(
        f"the state bucket {config.state_bucket} exists in another account than the {config.state.account} account "
        f"{config.state_account.account_id}; set state.bucket to a bucket of that account, or to a free name"
    )


def ensure_state_bucket(s3: Any, config: MigrationConfig) -> bool:
    """Create the state bucket when it does not exist; True when it was created now."""
    bucket, owner = config.state_bucket, config.state_account.account_id
    found = bucket_state(s3, bucket, owner)
    if found == "present":
        return False
    if found == "foreign":
        raise refuse_foreign(config)
    kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if config.state_region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.state_region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if error_code(err) in ("BucketAlreadyExists",):
            raise refuse_foreign(config) from None
        if error_code(err) != "BucketAlreadyOwnedByYou":
            raise
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket, config.partition))
    return True
