"""``migration.yaml``: loaded and validated before any AWS call.

Every problem is reported as one sentence naming the field and the reason.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

Account = Literal["source", "target"]
"""One of the migration's two accounts (and the name of the Terraform root applied in it)."""

ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")
ROLE_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov|-iso[a-z-]*)?:iam::([0-9]{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}$")
MIGRATION_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PROFILE_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
KMS_KEY_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov|-iso[a-z-]*)?:kms:([a-z0-9-]+):[0-9]{12}:key/[A-Za-z0-9-]{1,128}$")
#: Region prefixes of the partitions other than ``aws`` (longest first).
PARTITIONS = (
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-iso-", "aws-iso"),
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
)


def partition_of(region: str) -> str:
    """The AWS partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso`` …), for ARNs."""
    for prefix, partition in PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountConfig(_Strict):
    account_id: str
    region: str
    table: str | None = None
    role_arn: str | None = None
    profile: str | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, v: Any) -> Any:
        if isinstance(v, int):
            raise ValueError("must be a quoted string of 12 digits (YAML drops leading zeros of numbers)")
        if not isinstance(v, str) or not ACCOUNT_RE.match(v):
            raise ValueError(f"must be 12 digits, got {v!r}")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not REGION_RE.match(v):
            raise ValueError(f"does not look like an AWS region (such as us-east-1), got {v!r}")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None and not TABLE_RE.match(v):
            raise ValueError(f"is not a valid DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -), got {v!r}")
        return v

    @field_validator("role_arn")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and not ROLE_ARN_RE.match(v):
            raise ValueError(f"is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>), got {v!r}")
        return v

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str | None) -> str | None:
        if v is not None and not PROFILE_RE.match(v):
            raise ValueError(f"is not a valid profile name, got {v!r}")
        return v

    @model_validator(mode="after")
    def _role_in_account(self) -> AccountConfig:
        if self.role_arn and self.profile:
            raise ValueError("give either role_arn or profile, not both")
        if self.role_arn:
            m = ROLE_ARN_RE.match(self.role_arn)
            assert m is not None
            if m.group(2) != self.account_id:
                raise ValueError(f"role_arn belongs to account {m.group(2)}, not to account_id {self.account_id}")
        return self


class ReplicatorConfig(_Strict):
    # 1000 = the most records one GetRecords returns: ~28% fewer target writes than 100 on a hot-key mix
    # (last change per key), a tenth of the invocations; the 6 MB payload and the timeout still bound it.
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 1000
    maximum_batching_window_in_seconds: Annotated[int, Field(ge=0, le=300)] = 1
    maximum_retry_attempts: Annotated[int, Field(ge=0, le=10000)] = 10
    parallelization_factor: Annotated[int, Field(ge=1, le=10)] = 1
    timeout: Annotated[int, Field(ge=30, le=900)] = 300
    memory_size: Annotated[int, Field(ge=128, le=10240)] = 512
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731] = 30
    iterator_age_alarm_ms: Annotated[int, Field(ge=1000)] = 600_000
    alarm_actions: tuple[str, ...] = ()
    #: Customer managed KMS key for the failure bucket, the log group and the function's environment.
    kms_key_arn: str | None = None

    @field_validator("kms_key_arn")
    @classmethod
    def _kms(cls, v: str | None) -> str | None:
        if v is not None and not KMS_KEY_ARN_RE.match(v):
            raise ValueError(f"is not a KMS key ARN (arn:aws:kms:<region>:<12 digits>:key/<id>), got {v!r}")
        return v


class RetryConfig(_Strict):
    """How migrator's batch calls retry (throttling, 5xx, unprocessed items): full-jitter backoff."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 30
    base_delay_s: Annotated[float, Field(gt=0, le=10)] = 0.05
    max_delay_s: Annotated[float, Field(gt=0, le=60)] = 5.0


class TargetTableOverrides(_Strict):
    """Overrides of what the migrator derives from the source table's description."""

    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] | None = None
    read_capacity: Annotated[int, Field(ge=1)] | None = None
    write_capacity: Annotated[int, Field(ge=1)] | None = None
    kms_key_arn: str | None = None
    point_in_time_recovery: bool = True
    deletion_protection: bool = True
    stream_view_type: Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "NONE"] | None = None
    ttl_attribute: str | None = None
    table_class: Literal["STANDARD", "STANDARD_INFREQUENT_ACCESS"] | None = None
    #: How long Terraform waits for the import (minutes); default: the time left to the stream-retention
    #: deadline when phase 3 first runs, at most 24 h.
    import_timeout_minutes: Annotated[int, Field(ge=30, le=1440)] | None = None


class StateConfig(_Strict):
    """Where the Terraform state and the migration document live: one S3 bucket a whole team shares."""

    bucket: str | None = None  # default: migrator-state-<account id>-<region> of ``account``
    account: Account = "target"  # which account owns the bucket
    region: str | None = None  # default: that account's region
    prefix: str = "migrator"

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and (not BUCKET_RE.match(v) or ".." in v or re.match(r"^\d+\.\d+\.\d+\.\d+$", v)):
            raise ValueError(
                f"is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-', starting and ending "
                f"with a letter or digit), got {v!r}"
            )
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not REGION_RE.match(v):
            raise ValueError(f"does not look like an AWS region (such as us-east-1), got {v!r}")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", v):
            raise ValueError(f"must be an S3 key prefix of path segments without leading or trailing '/', got {v!r}")
        return v


class MigrationConfig(_Strict):
    migration: str
    source: AccountConfig
    target: AccountConfig
    endpoint_url: str | None = None
    bucket: str | None = None
    export_prefix: str | None = None
    export_expiration_days: Annotated[int, Field(ge=1, le=365)] = 14
    external_id: str | None = None
    state_dir: str | None = None
    replicator: ReplicatorConfig = ReplicatorConfig()
    target_table: TargetTableOverrides = TargetTableOverrides()
    retry: RetryConfig = RetryConfig()
    state: StateConfig = StateConfig()
    stream_retention_hours: Annotated[float, Field(gt=0, le=24)] = 24.0

    @field_validator("migration")
    @classmethod
    def _migration(cls, v: str) -> str:
        if not MIGRATION_RE.match(v):
            raise ValueError(f"must be 1-40 characters of a-z, 0-9 and '-', not starting or ending with '-', got {v!r}")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]+)?/?$", v):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:5000, got {v!r}")
        return v.rstrip("/") if v else v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not BUCKET_RE.match(v):
            raise ValueError(f"is not a valid S3 bucket name, got {v!r}")
        return v

    @field_validator("export_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or not re.match(r"^[A-Za-z0-9!_.*'()/-]{1,512}$", v)):
            raise ValueError(f"must be a relative S3 key prefix without a leading '/', got {v!r}")
        return v.strip("/") if v else v

    @model_validator(mode="after")
    def _distinct(self) -> MigrationConfig:
        if self.source.table is None:
            raise ValueError("source.table is required: name the table to migrate")
        key = self.replicator.kms_key_arn
        m = KMS_KEY_ARN_RE.match(key) if key else None
        if m is not None and m.group(2) != self.source.region:
            raise ValueError(
                f"replicator.kms_key_arn is a key in {m.group(2)}; the replicator runs in the source region "
                f"{self.source.region}, and its log group and failure bucket need a key there"
            )
        if partition_of(self.source.region) != partition_of(self.target.region):
            raise ValueError(
                f"source.region {self.source.region} and target.region {self.target.region} are in different AWS "
                "partitions, which share no accounts or roles; choose regions of one partition"
            )
        if (
            self.source.account_id == self.target.account_id
            and self.source.region == self.target.region
            and self.source.table == self.target_table_name
        ):
            raise ValueError(
                "source and target are the same table in the same account and region; "
                "set target.account_id, target.region or target.table to somewhere else"
            )
        return self

    # Derived names --------------------------------------------------------------------------------
    @property
    def source_table_name(self) -> str:
        assert self.source.table is not None
        return self.source.table

    @property
    def target_table_name(self) -> str:
        return self.target.table or self.source_table_name

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"{self.migration}-export-{self.target.account_id}"

    @property
    def failure_bucket_name(self) -> str:
        return f"{self.migration}-failures-{self.source.account_id}"

    @property
    def export_s3_prefix(self) -> str:
        return self.export_prefix or f"exports/{self.migration}"

    @property
    def replicator_name(self) -> str:
        return f"{self.migration}-replicator"

    @property
    def writer_role_name(self) -> str:
        return f"{self.migration}-writer"

    # The way back (phase 5): a replicator in the target account on the target table's stream, writing the
    # source table through a writer role in the source account. For a 40-character migration name the
    # longest is the failure bucket, 61 of S3's 63 characters (``-reverse-failures-`` would make 70).
    @property
    def reverse_replicator_name(self) -> str:
        """The reverse replicator's function and execution role (target account): at most 59 characters."""
        return f"{self.migration}-reverse-replicator"

    @property
    def reverse_writer_role_name(self) -> str:
        """The role in the SOURCE account the reverse replicator assumes: at most 55 characters."""
        return f"{self.migration}-reverse-writer"

    @property
    def reverse_failure_bucket_name(self) -> str:
        """The reverse replicator's on-failure destination in the TARGET account: at most 61 characters."""
        return f"{self.migration}-revfail-{self.target.account_id}"

    @property
    def state_account(self) -> AccountConfig:
        return self.source if self.state.account == "source" else self.target

    @property
    def state_region(self) -> str:
        return self.state.region or self.state_account.region

    @property
    def state_bucket(self) -> str:
        return self.state.bucket or f"migrator-state-{self.state_account.account_id}-{self.state_region}"

    @property
    def state_key(self) -> str:
        """The migration document's key in the state bucket."""
        return f"{self.state.prefix}/{self.migration}/state.json"

    @property
    def lock_key(self) -> str:
        """The migration lock's key in the state bucket."""
        return f"{self.state.prefix}/{self.migration}/lock.json"

    @property
    def partition(self) -> str:
        """The AWS partition of both accounts (the configuration refuses two)."""
        return partition_of(self.source.region)

    @property
    def replicator_role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.source.account_id}:role/{self.replicator_name}"

    @property
    def writer_role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.target.account_id}:role/{self.writer_role_name}"

    @property
    def writer_external_id(self) -> str:
        if self.external_id:
            return self.external_id
        digest = hashlib.sha256(
            f"{self.migration}:{self.source.account_id}:{self.target.account_id}".encode()
        ).hexdigest()
        return f"migrator-{self.migration}-{digest[:16]}"

    @property
    def reverse_replicator_role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.target.account_id}:role/{self.reverse_replicator_name}"

    @property
    def reverse_writer_role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.source.account_id}:role/{self.reverse_writer_role_name}"

    @property
    def reverse_external_id(self) -> str:
        """The external id of the reverse writer role: derived like :attr:`writer_external_id`, never equal to it."""
        if self.external_id:
            return f"{self.external_id}-reverse"
        digest = hashlib.sha256(
            f"reverse:{self.migration}:{self.target.account_id}:{self.source.account_id}".encode()
        ).hexdigest()
        return f"migrator-{self.migration}-rev-{digest[:16]}"


def _sentence(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'; remove it or check its spelling against the README"
    if kind == "missing":
        return f"'{loc}' is missing; add it"
    if not loc:
        return msg
    return f"'{loc}' {msg}" if msg[:1].islower() else f"'{loc}': {msg}"


def parse_config(data: Any, *, origin: str = "migration.yaml") -> MigrationConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a YAML mapping with keys migration, source and target")
    try:
        return MigrationConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{origin}: {_sentence(err)}.") from None


def load_config(path: Path) -> MigrationConfig:
    if not path.is_file():
        raise ConfigError(f"no configuration at {path}; write a migration.yaml (see the README) or pass --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path.name} is not valid YAML{where}; fix the syntax and run again") from None
    return parse_config(data, origin=path.name)


def state_dir_for(config: MigrationConfig, config_path: Path) -> Path:
    base = Path(config.state_dir) if config.state_dir else Path(".migrator")
    if not base.is_absolute():
        base = config_path.resolve().parent / base
    return base / config.migration
