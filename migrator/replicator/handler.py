"""The Lambda entry point (``replicator.handler.handler``) of the stream replicator.

The function runs in the source account, reads the source table's stream through its event source
mapping (with ``ReportBatchItemFailures``), assumes the writer role in the target account (with the
external id) and applies each batch through :func:`.core.apply_records`.

Environment: ``TARGET_TABLE``, ``TARGET_REGION``, ``WRITER_ROLE_ARN``, ``EXTERNAL_ID`` and, for a local
emulator only, ``TARGET_ENDPOINT_URL`` (used for STS and DynamoDB). Optional tuning:
``MAX_WORKERS`` (parallel BatchWriteItem calls, default 8), ``SAFETY_MARGIN_S`` (seconds kept free
before the Lambda's deadline, default 5), and the retry limits of migrator's configuration
(``RETRY_MAX_ATTEMPTS``, ``RETRY_BASE_DELAY_S``, ``RETRY_MAX_DELAY_S``; defaults: :class:`.batch.RetryPolicy`'s).

The assumed-role credentials and the client built from them are cached at module level (one per
warm execution environment) and refreshed ``REFRESH_BEFORE_S`` before they expire — never per record.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config

from .batch import RetryPolicy
from .core import ApplyResult, apply_records, oldest_record_age_s

REFRESH_BEFORE_S = 300.0
SESSION_NAME = "migrator-replicator"
ASSUME_DURATION_S = 3600
#: Errors meaning the cached credentials are no good any more: the next invocation re-assumes.
CREDENTIAL_ERRORS = frozenset(
    {"ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "InvalidSignatureException"}
)


class ConfigurationError(RuntimeError):
    """The function's environment lacks a setting."""


@dataclass(frozen=True)
class Settings:
    table: str
    region: str
    role_arn: str
    external_id: str
    endpoint_url: str | None
    max_workers: int
    safety_margin_s: float
    retry_max_attempts: int = RetryPolicy.max_attempts
    retry_base_delay_s: float = RetryPolicy.base_delay
    retry_max_delay_s: float = RetryPolicy.max_delay

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [n for n in ("TARGET_TABLE", "TARGET_REGION", "WRITER_ROLE_ARN", "EXTERNAL_ID") if not env.get(n)]
        if missing:
            raise ConfigurationError(f"the replicator's environment lacks {', '.join(missing)}")
        return cls(
            table=env["TARGET_TABLE"],
            region=env["TARGET_REGION"],
            role_arn=env["WRITER_ROLE_ARN"],
            external_id=env["EXTERNAL_ID"],
            endpoint_url=env.get("TARGET_ENDPOINT_URL") or None,
            max_workers=int(env.get("MAX_WORKERS") or 8),
            safety_margin_s=float(env.get("SAFETY_MARGIN_S") or 5.0),
            retry_max_attempts=int(env.get("RETRY_MAX_ATTEMPTS") or RetryPolicy.max_attempts),
            retry_base_delay_s=float(env.get("RETRY_BASE_DELAY_S") or RetryPolicy.base_delay),
            retry_max_delay_s=float(env.get("RETRY_MAX_DELAY_S") or RetryPolicy.max_delay),
        )

    def retry(self, call_timeout_s: float = 0.0) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base_delay=self.retry_base_delay_s,
            max_delay=self.retry_max_delay_s,
            safety_margin_s=self.safety_margin_s,
            call_timeout_s=call_timeout_s,
        )


#: The longest a connection may take to open, and a response to arrive, when time is plentiful.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0


def call_timeouts(time_left_s: float | None, margin_s: float) -> tuple[float, float]:
    """``(connect, read)`` timeouts of one call: together at most half of the time left before the margin.

    The client makes one attempt per call (every retry is the core's, under the deadline), so a call
    can never take longer than these, and the core starts one only while it would end before the
    margin. Rounded down to half seconds, so a warm function keeps one client across invocations.
    """
    if time_left_s is None:
        return CONNECT_TIMEOUT_S, READ_TIMEOUT_S
    whole_seconds_free = math.floor(max(0.0, time_left_s - margin_s))
    budget = max(0.5, whole_seconds_free / 2)
    connect = min(CONNECT_TIMEOUT_S, budget / 4)
    return connect, min(READ_TIMEOUT_S, budget - connect)


@dataclass
class _CachedClient:
    identity: tuple[str, str, str, str | None]
    credentials: dict[str, Any]
    expires_at: float  # epoch seconds
    clients: dict[tuple[float, float], Any] = field(default_factory=dict)  # by (connect, read) timeouts
    client: Any = None  # the one the last invocation used


_lock = threading.Lock()
_cached: _CachedClient | None = None


def _now() -> float:
    return time.time()


def client_config(
    max_workers: int, timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
) -> botocore.config.Config:
    """The botocore configuration of the target client the core writes through.

    One attempt per call: botocore's own retries would be invisible to the core's deadline (four
    attempts of a throttled call took 6–8 s), so retrying is the core's alone. Connect and read timeouts
    bound each attempt (:func:`call_timeouts`). Parameter validation is off: this client makes only the
    core's ``BatchWriteItem`` calls, whose requests the core builds itself from values it has already
    checked one by one (every tag and member type botocore's validator checks); validating again would
    walk every value a second time, about 40% of botocore's CPU per item written.
    """
    connect, read = timeouts
    return botocore.config.Config(
        parameter_validation=False,
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=connect,
        read_timeout=read,
        max_pool_connections=max(10, max_workers * 2),
    )


def _assume(settings: Settings, timeouts: tuple[float, float]) -> _CachedClient:
    connect, read = timeouts
    sts = boto3.client(
        "sts",
        region_name=os.environ.get("AWS_REGION") or settings.region,
        endpoint_url=settings.endpoint_url,
        config=botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=connect, read_timeout=read
        ),
    )
    creds = sts.assume_role(
        RoleArn=settings.role_arn,
        RoleSessionName=SESSION_NAME,
        ExternalId=settings.external_id,
        DurationSeconds=ASSUME_DURATION_S,
    )["Credentials"]
    expiration = creds.get("Expiration")
    expires_at = expiration.timestamp() if isinstance(expiration, dt.datetime) else _now() + ASSUME_DURATION_S
    identity = (settings.role_arn, settings.external_id, settings.region, settings.endpoint_url)
    return _CachedClient(identity, dict(creds), expires_at)


def target_client(settings: Settings, timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> Any:
    """The DynamoDB client of the target account, re-assuming the role only near expiry."""
    global _cached
    identity = (settings.role_arn, settings.external_id, settings.region, settings.endpoint_url)
    with _lock:
        cached = _cached
        if cached is None or cached.identity != identity or cached.expires_at - _now() < REFRESH_BEFORE_S:
            cached = _assume(settings, timeouts)
            _cached = cached
        client = cached.clients.get(timeouts)
        if client is None:
            creds = cached.credentials
            client = cached.clients[timeouts] = boto3.client(
                "dynamodb",
                region_name=settings.region,
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                config=client_config(settings.max_workers, timeouts),
            )
        cached.client = client
        return client


def reset_credentials() -> None:
    """Forget the cached credentials (the next call assumes the role again)."""
    global _cached
    with _lock:
        _cached = None


def _log(line: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def batch_log_line(
    result: ApplyResult, records: list[Mapping[str, Any]], duration_s: float, time_left_s: float | None = None
) -> dict[str, Any]:
    age = oldest_record_age_s(records)
    return {
        "message": "replicator batch",
        "records_in": result.records_in,
        "writes": result.writes,
        "puts": result.puts,
        "deletes": result.deletes,
        "attempts": result.calls,  # every BatchWriteItem attempt (the client makes one per call)
        "retries": result.retries,
        "calls": result.calls,
        "failures": len(result.failed),
        "refused_records": result.refused,
        "error_codes": result.error_codes,
        "errors": sorted({f.message for f in result.failed if f.code == "RecordError"}),
        "lowest_failed_sequence": result.lowest_failed_sequence,
        "oldest_record_age_s": None if age is None else round(age, 3),
        "duration_ms": round(duration_s * 1000, 1),
        "time_left_ms": None if time_left_s is None else round(time_left_s * 1000),
    }


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Apply one batch of stream records; report the lowest failing SequenceNumber, if any.

    A record the core cannot apply (no NewImage, an unknown event) is reported like a failed write:
    the records before it are checkpointed, and after the mapping's retries the batch lands in the
    failure destination, where ``migrator redrive`` fixes its key from the current source item.
    """
    started = time.monotonic()
    settings = Settings.from_env()
    records: list[Mapping[str, Any]] = list(event.get("Records") or [])
    result = ApplyResult()
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def time_left() -> float:
        assert remaining is not None
        return float(remaining()) / 1000.0

    if records:
        timeouts = call_timeouts(time_left() if remaining is not None else None, settings.safety_margin_s)
        client = target_client(settings, timeouts)
        try:
            result = apply_records(
                client,
                settings.table,
                records,
                time_left=time_left if remaining is not None else None,
                max_workers=settings.max_workers,
                retry=settings.retry(call_timeout_s=sum(timeouts)),
            )
        except Exception as error:
            _log(
                {
                    "message": "replicator batch refused",
                    "records_in": len(records),
                    "error": f"{type(error).__name__}: {error}",
                }
            )
            raise
        if any(f.code in CREDENTIAL_ERRORS for f in result.failed):
            reset_credentials()
    left = time_left() if remaining is not None else None
    _log(batch_log_line(result, records, time.monotonic() - started, left))
    lowest = result.lowest_failed_sequence
    return {"batchItemFailures": [] if lowest is None else [{"itemIdentifier": lowest}]}
