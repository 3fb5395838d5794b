"""The emulator's Lambda runtime: event source mappings on DynamoDB streams, run as Lambda runs them.

moto stores event source mappings and functions but runs a function only in Docker. This module is
the part of Lambda that the emulator lacks, for DynamoDB-stream mappings: :class:`LambdaRuntime`,
started and stopped by :func:`migrator.dev.emulator.start_emulator` / ``Emulator.stop()``.

**Discovery.** One thread lists the mappings in moto's Lambda backends in-process (every
:data:`DISCOVERY_S`), and starts a worker thread for each ENABLED mapping on a DynamoDB stream.

**Polling.** A worker reads its mapping with ``GetEventSourceMapping`` before each batch, so a change
made with the Lambda API (as Terraform makes it: ``Enabled``, ``BatchSize``, the batching window,
retries, the destination) applies to the next batch. A Disabled mapping stops after the batch in
flight; its worker parks and keeps the shard checkpoints, so enabling it again delivers from where it
stands (from TRIM_HORIZON on the first enable; the mapping's StartingPosition is honoured for
TRIM_HORIZON and LATEST). The stream is read through the DynamoDB Streams API at the emulator's own
endpoint with the function's execution-role credentials, as Lambda reads it: DescribeStream lists
the shards (again every :data:`SHARD_REFRESH_S`), a child shard is read only after its parent was
read to its end, each shard has one batch in flight at a time, in order. A batch is up to
``BatchSize`` records (and at most the 6 MB invocation payload); once a record is there the worker
waits up to ``MaximumBatchingWindowInSeconds`` for more. A shard that returned nothing is polled
again after :data:`IDLE_POLL_S`, doubling up to :data:`IDLE_POLL_MAX_S`.

**Invocation.** Before each invocation the function is read back with ``GetFunction`` (handler,
runtime, environment, timeout, memory, role, CodeSha256); the zip's bytes come from the moto backend
in-process, are checked against that CodeSha256 and unzipped once per code version into a private
temporary directory. The handler runs in a separate interpreter (``sys.executable -I -S``): its
``sys.path`` is the stdlib, the unzipped code and a directory holding only boto3, botocore and their
dependencies (links to the installed ones), and a meta-path finder refuses ``migrator`` (the dev
virtualenv's editable install is invisible anyway under ``-S``). Its environment is Lambda's, built
from nothing: the function's variables, the execution role's credentials (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
``AWS_LAMBDA_FUNCTION_NAME`` / ``_VERSION`` / ``_MEMORY_SIZE`` / ``_TIMEOUT``, the log group and
stream names, ``AWS_EXECUTION_ENV``, ``LAMBDA_TASK_ROOT``, ``_HANDLER``, ``TZ``; plus, for the
emulator only, ``AWS_ENDPOINT_URL`` (every client the function makes talks to the emulator, never to
AWS), ``AWS_CA_BUNDLE`` when the emulator serves HTTPS (its clients trust the emulator's CA, as the
runtime's own clients do) and empty AWS config/credentials files. The event is Lambda's JSON for
DynamoDB streams (binary values base64 text, ``ApproximateCreationDateTime`` epoch seconds); the context has
``get_remaining_time_in_millis()`` from the invocation's deadline, ``function_name``,
``function_version``, ``invoked_function_arn``, ``memory_limit_in_mb``, ``aws_request_id``,
``log_group_name``, ``log_stream_name``.

**Execution environments.** As on Lambda an interpreter stays warm between invocations of the same
function, code and configuration (module-level caches survive) and is reused; a new one starts after a
crash (the process exits: ``Runtime.ExitError``), a timeout (the process is killed when the function's
timeout passes: ``Sandbox.Timedout``), an init failure, a code or configuration change, when its
credentials are :data:`CREDENTIALS_MAX_AGE_S` old, after :data:`IDLE_PROCESS_S` idle, or when more than
:data:`MAX_IDLE_PROCESSES` are idle (the least recently used goes). An exception
the handler raises is a function error but leaves the interpreter warm, as on Lambda. The init phase
(importing the handler's module) may take :data:`INIT_TIMEOUT_S` plus the function's timeout. The
function's stdout and stderr, with Lambda's START / END / REPORT lines, go to
:meth:`LambdaRuntime.log_path` (one file per function).

**The mapping's settings.** ``ReportBatchItemFailures``: the batch is checkpointed up to the record
before the lowest reported ``itemIdentifier`` and retried from it; an empty or null list, or an empty
or null response, is success; an empty, null or unknown identifier fails the whole batch. A function
error (exception, crash, timeout, init failure) retries the batch; with
``BisectBatchOnFunctionError`` a failing batch of more than one record is split in two halves,
retried in order (a split does not reset the retry count). ``MaximumRetryAttempts`` (absent or -1:
until the record expires): past it the batch goes to the on-failure destination and the shard moves
on. ``MaximumRecordAgeInSeconds`` (absent or -1: no limit): older records go to the destination
unprocessed. The destination: an S3 bucket (one object per batch, key
``aws/lambda/<ESM-UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>``, Lambda's invocation record
with the event as ``payload``), an SQS queue or an SNS topic (the record without payload), written
with the execution role's credentials; a write that fails :data:`DESTINATION_ATTEMPTS` times is
counted in ``destination_errors`` and the records are dropped, as a mapping without destination drops
them. A failed batch is retried after ``RETRY_BACKOFF_S * 2**(attempts-1)`` seconds, at most
:data:`RETRY_BACKOFF_MAX_S` (short, so tests stay quick; Lambda's own back-off is longer). Errors of
the service's side (the function cannot be read, the stream cannot be read) are retried the same way
without counting an attempt, as on Lambda.

**Metrics.** After each invocation, namespace ``AWS/Lambda``, dimension ``FunctionName``:
``Invocations`` (1), ``Errors`` (0 or 1), ``Duration`` (ms) and ``IteratorAge`` (ms: the age of the
batch's last record when the batch was sent), with PutMetricData against the emulator in the
function's account. :meth:`LambdaRuntime.stats` keeps counters per mapping (:class:`MappingStats`).

Limits: one thread per mapping reads its shards one batch at a time, so ``ParallelizationFactor``
above 1 runs as 1; ``FilterCriteria``, tumbling windows, Kafka/SQS/Kinesis sources, layers, container
images and non-Python runtimes are not supported (the latter two fail each invocation as a function
error); the interpreter is the emulator's own Python, whatever ``Runtime`` says.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from ..aws.errors import error_code
from ..aws.session import botocore_session

log = logging.getLogger("migrator.dev.lambda_runtime")

DISCOVERY_S = 0.25  # how often the mappings are listed
IDLE_POLL_S = 0.1  # a shard that returned nothing is polled again after this …
IDLE_POLL_MAX_S = 1.0  # … doubling up to this
SHARD_REFRESH_S = 5.0  # DescribeStream again after this
RETRY_BACKOFF_S = 0.05  # a failed batch waits RETRY_BACKOFF_S * 2**(attempts-1) …
RETRY_BACKOFF_MAX_S = 1.0  # … at most this, before its retry
INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit; the function's timeout is added to it
IDLE_PROCESS_S = 300.0  # a warm interpreter unused this long is stopped …
MAX_IDLE_PROCESSES = 8  # … and beyond this many idle ones, the least recently used (about 45 MB each)
CREDENTIALS_MAX_AGE_S = 45 * 60.0  # execution-role credentials are renewed (and interpreters replaced) after this
DESTINATION_ATTEMPTS = 5
MAX_GET_RECORDS = 1000  # DynamoDB Streams' GetRecords limit
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
SERVICE_ROLE = "aws-service-role/lambda.amazonaws.com/EmulatorLambdaService"
"""The emulator's stand-in for the Lambda service's own access to an account (moto answers in an
account only to one of its access keys): used to read mappings and functions and to publish metrics."""
_STATIC_KEY = ("AKIAEMULATORLAMBDA00", "emulator-lambda-runtime")  # only to call STS AssumeRole

# --------------------------------------------------------------------------------------------------
# The interpreter a function runs in (the text of `python -I -S -c`)
# --------------------------------------------------------------------------------------------------

BOOTSTRAP = r'''
import importlib, importlib.abc, json, os, struct, sys, time, traceback

RFD, WFD = int(sys.argv[1]), int(sys.argv[2])
sys.path[:0] = [sys.argv[3], sys.argv[4]]


class _Refuse(importlib.abc.MetaPathFinder):
    """Lambda's Python has no migrator: refuse it even if some path could provide it."""

    def find_spec(self, name, path=None, target=None):
        if name == "migrator" or name.startswith("migrator."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Refuse())


def _send(message):
    data = json.dumps(message).encode("utf-8")
    os.write(WFD, struct.pack(">I", len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(WFD, view):]


def _recv():
    def exactly(n):
        chunks, left = [], n
        while left:
            chunk = os.read(RFD, left)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    (size,) = struct.unpack(">I", exactly(4))
    return json.loads(exactly(size))


def _error(error, error_type=None):
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


class LambdaContext:
    def __init__(self, message):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn = message["invoked_function_arn"]
        self.aws_request_id = message["request_id"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = message["deadline_ms"]

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def main():
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        sys.stderr.write(f"[ERROR] Runtime.ImportModuleError: Unable to import module {module_name!r}: {error}\n")
        _send({"type": "init_error", **_error(error, "Runtime.ImportModuleError")})
        return 1
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler {function_name!r} missing on module {module_name!r}"
        sys.stderr.write(f"[ERROR] Runtime.HandlerNotFound: {message}\n")
        _send({"type": "init_error", "errorMessage": message, "errorType": "Runtime.HandlerNotFound", "stackTrace": []})
        return 1
    _send({"type": "ready"})
    while True:
        try:
            message = _recv()
        except EOFError:
            return 0
        try:
            result = handler(message["event"], LambdaContext(message))
        except Exception as error:
            body = _error(error)
            sys.stderr.write(f"[ERROR] {body['errorType']}: {body['errorMessage']}\n")
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            _send({"type": "error", **body})
            continue
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as error:
            _send({"type": "error", **_error(error, "Runtime.MarshalError")})
            continue
        _send({"type": "result", "payload": payload})


sys.exit(main())
'''

# --------------------------------------------------------------------------------------------------
# Public shapes
# --------------------------------------------------------------------------------------------------


@dataclass
class MappingStats:
    """What went through one event source mapping (a snapshot from :meth:`LambdaRuntime.stats`)."""

    uuid: str
    function_arn: str = ""
    event_source_arn: str = ""
    state: str = "Enabled"  # as the poller last read it: Enabled, Disabled, Deleted
    batches: int = 0  # invocations that processed their whole batch
    records: int = 0  # records the function processed (checkpointed after its answer)
    partial_batches: int = 0  # invocations that reported batch item failures
    failed_batches: int = 0  # batches given up on (retries exhausted or records too old)
    failed_records: int = 0  # records in them (sent to the on-failure destination, if any)
    destination_objects: int = 0  # invocation records written to the destination
    destination_errors: int = 0  # invocation records the destination refused (records dropped)
    invocations: int = 0
    errors: int = 0  # function errors: exception, crash, timeout, init failure, unreadable response
    cold_starts: int = 0  # invocations that started a fresh interpreter
    function_time_s: float = 0.0  # summed invocation durations
    first_invocation_at: float | None = None  # epoch seconds
    last_invocation_at: float | None = None  # epoch seconds, end of the last invocation

    @property
    def function_name(self) -> str:
        return self.function_arn.split(":")[6] if self.function_arn.count(":") >= 6 else self.function_arn

    @property
    def records_per_s(self) -> float | None:
        """Records processed per second, from the first invocation's start to the last one's end."""
        if self.first_invocation_at is None or self.last_invocation_at is None:
            return None
        span = self.last_invocation_at - self.first_invocation_at
        return self.records / span if span > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "function": self.function_name,
            "state": self.state,
            "batches": self.batches,
            "records": self.records,
            "partial_batches": self.partial_batches,
            "failed_batches": self.failed_batches,
            "failed_records": self.failed_records,
            "destination_objects": self.destination_objects,
            "destination_errors": self.destination_errors,
            "invocations": self.invocations,
            "errors": self.errors,
            "cold_starts": self.cold_starts,
            "function_time_s": round(self.function_time_s, 3),
            "records_per_s": None if self.records_per_s is None else round(self.records_per_s, 1),
        }


def wire(value: Any) -> Any:
    """An AttributeValue as JSON carries it: ``B`` and ``BS`` members (at any depth) as base64 text."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return value
    ((tag, inner),) = value.items()
    if tag == "B" and isinstance(inner, bytes | bytearray):
        return {"B": base64.b64encode(inner).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(v).decode("ascii") if isinstance(v, bytes | bytearray) else v for v in inner]}
    if tag == "M":
        return {"M": {k: wire(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [wire(v) for v in inner]}
    return {tag: inner}


def _epoch(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        seconds = value.timestamp()
        return int(seconds) if seconds.is_integer() else seconds
    return value


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it) in the shape Lambda hands a function."""
    body = dict(record["dynamodb"])
    if "ApproximateCreationDateTime" in body:
        body["ApproximateCreationDateTime"] = _epoch(body["ApproximateCreationDateTime"])
    for image in ("Keys", "NewImage", "OldImage"):
        if isinstance(body.get(image), Mapping):
            body[image] = {name: wire(v) for name, v in body[image].items()}
    out: dict[str, Any] = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion"),
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        out["userIdentity"] = dict(record["userIdentity"])
    return out


def _seq(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _created(record: Mapping[str, Any]) -> float | None:
    value = record["dynamodb"].get("ApproximateCreationDateTime")
    return float(value) if isinstance(value, int | float) else None


def _iso(epoch: float | None, *, millis: bool = False) -> str | None:
    if epoch is None:
        return None
    when = dt.datetime.fromtimestamp(epoch, dt.UTC)
    if millis:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Internal shapes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MappingConfig:
    uuid: str
    function_arn: str
    stream_arn: str
    enabled: bool
    starting_position: str
    batch_size: int
    window_s: float
    bisect: bool
    max_retry: int  # -1: until the record expires
    max_age_s: int  # -1: no limit
    report_failures: bool
    on_failure: str | None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> _MappingConfig:
        def number(name: str, default: int) -> int:
            value = d.get(name)
            return default if value is None else int(value)

        destination = (d.get("DestinationConfig") or {}).get("OnFailure") or {}
        return cls(
            uuid=str(d["UUID"]),
            function_arn=str(d["FunctionArn"]),
            stream_arn=str(d["EventSourceArn"]),
            enabled=d.get("State") in ("Enabled", "Enabling", "Updating"),
            starting_position=str(d.get("StartingPosition") or "TRIM_HORIZON"),
            batch_size=max(1, number("BatchSize", 100)),
            window_s=float(d.get("MaximumBatchingWindowInSeconds") or 0),
            bisect=bool(d.get("BisectBatchOnFunctionError")),
            max_retry=number("MaximumRetryAttempts", -1),
            max_age_s=number("MaximumRecordAgeInSeconds", -1),
            report_failures="ReportBatchItemFailures" in (d.get("FunctionResponseTypes") or []),
            on_failure=destination.get("Destination") or None,
        )


@dataclass(frozen=True)
class FunctionSpec:
    """A function as GetFunction reports it: what its interpreter is started with."""

    arn: str
    name: str
    version: str
    handler: str
    runtime: str
    role: str
    timeout_s: int
    memory_mb: int
    environment: tuple[tuple[str, str], ...]
    code_sha256: str
    package_type: str

    @classmethod
    def from_api(cls, c: Mapping[str, Any]) -> FunctionSpec:
        return cls(
            arn=str(c["FunctionArn"]),
            name=str(c["FunctionName"]),
            version=str(c.get("Version") or "$LATEST"),
            handler=str(c.get("Handler") or ""),
            runtime=str(c.get("Runtime") or ""),
            role=str(c["Role"]),
            timeout_s=int(c.get("Timeout") or 3),
            memory_mb=int(c.get("MemorySize") or 128),
            environment=tuple(sorted(((c.get("Environment") or {}).get("Variables") or {}).items())),
            code_sha256=str(c.get("CodeSha256") or ""),
            package_type=str(c.get("PackageType") or "Zip"),
        )

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    @property
    def version_name(self) -> str:
        return "$LATEST" if self.version in ("", "$LATEST") else self.version


@dataclass
class InvokeResult:
    request_id: str
    ok: bool  # False: a function error
    payload: Any = None  # the handler's answer, decoded
    error_type: str | None = None
    error_message: str | None = None
    duration_s: float = 0.0
    cold: bool = False


@dataclass
class _Batch:
    records: list[dict[str, Any]]
    attempts: int = 0  # invocations so far
    request_id: str | None = None  # of the last invocation
    function_error: bool = False  # the last invocation ended in a function error


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    closed: bool = False  # DescribeStream reports an EndingSequenceNumber
    checkpoint: str | None = None  # the last record done with (delivered, or given up on)
    fetched: str | None = None  # the last record read from the stream
    iterator: str | None = None
    carry: list[dict[str, Any]] = field(default_factory=list)  # read, not yet in a batch
    pending: list[_Batch] = field(default_factory=list)  # batches to retry, in order
    finished: bool = False  # closed and read to its end
    started: bool = False  # an iterator was ever taken (the starting position applies once)
    due: float = 0.0  # monotonic: next poll or retry
    idle_delay: float = IDLE_POLL_S
    empty_at: float = -1.0  # monotonic: the last read that found nothing with nothing pending

    def forget_reads(self) -> None:
        """Drop what was read but not done with: the next read starts after the checkpoint."""
        self.carry.clear()
        self.pending.clear()
        self.iterator = None
        self.fetched = self.checkpoint


@dataclass
class _MappingState:
    """What survives a worker parking: the shards' checkpoints and the counters."""

    uuid: str
    stats: MappingStats
    shards: dict[str, _Shard] = field(default_factory=dict)
    stream_arn: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ServiceError(Exception):
    """Lambda's side failed (function or stream unreadable): retried without counting an attempt."""


class _Gone(Exception):
    """The mapping no longer exists."""


# --------------------------------------------------------------------------------------------------
# AWS clients of the runtime (never boto3's default session)
# --------------------------------------------------------------------------------------------------


class _Clients:
    """boto3 clients against the emulator, by (account identity, service); credentials by role."""

    def __init__(self, endpoint: str, ca_bundle: Path | None = None) -> None:
        self.endpoint = endpoint
        self.verify: str | None = None if ca_bundle is None else str(ca_bundle)  # the emulator's CA, if TLS
        self._lock = threading.Lock()
        self._creds: dict[str, tuple[dict[str, str], float]] = {}
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=8,
        )

    def _client(self, service: str, region: str, creds: Mapping[str, str]) -> Any:
        key = (service, region, creds["AccessKeyId"], creds["SecretAccessKey"])
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            session = boto3.session.Session(botocore_session=botocore_session())
            client = session.client(
                service,  # type: ignore[call-overload]
                region_name=region,
                endpoint_url=self.endpoint,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds.get("SessionToken"),
                config=self._config,
                verify=self.verify,
            )
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    def credentials(self, role_arn: str, session_name: str = "emulator-lambda") -> tuple[dict[str, str], float]:
        """Credentials of ``role_arn`` (cached for :data:`CREDENTIALS_MAX_AGE_S`) and when they were made."""
        now = time.monotonic()
        with self._lock:
            cached = self._creds.get(role_arn)
        if cached is not None and now - cached[1] < CREDENTIALS_MAX_AGE_S:
            return cached
        static = {"AccessKeyId": _STATIC_KEY[0], "SecretAccessKey": _STATIC_KEY[1]}
        sts = self._client("sts", "us-east-1", static)
        got = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])["Credentials"]
        creds = {k: str(got[k]) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
        made = (creds, now)
        with self._lock:
            self._creds[role_arn] = made
            for key in [k for k in self._clients if cached is not None and k[2] == cached[0]["AccessKeyId"]]:
                del self._clients[key]
        return made

    def service(self, service: str, account: str, region: str) -> Any:
        """A client acting as the Lambda service in ``account``."""
        creds, _ = self.credentials(f"arn:aws:iam::{account}:role/{SERVICE_ROLE}")
        return self._client(service, region, creds)

    def as_role(self, service: str, role_arn: str, region: str) -> Any:
        """A client with the credentials of ``role_arn`` (a function's execution role)."""
        creds, _ = self.credentials(role_arn)
        return self._client(service, region, creds)


# --------------------------------------------------------------------------------------------------
# Code and the runtime's own library directory
# --------------------------------------------------------------------------------------------------


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The names a distribution installs at the top of site-packages: package directories and modules."""
    entries: set[str] = set()
    for path in dist.files or []:
        parts = Path(str(path)).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) > 1 or parts[0].endswith((".py", ".so", ".pyd")):
            entries.add(parts[0])
    return entries


def runtime_libraries(root: Path, roots: Sequence[str] = ("boto3", "botocore")) -> Path:
    """A directory holding only ``roots`` and their dependencies (links to the installed packages):
    what Lambda's Python runtime provides besides the stdlib."""
    target = root / "python"
    target.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in dist.requires or []:
            if "extra ==" in requirement or "extra==" in requirement:
                continue
            match = _REQUIREMENT.match(requirement)
            if match:
                todo.append(match.group(1))
        for top in _top_level_entries(dist):
            source = Path(str(dist.locate_file(top)))
            link = target / top
            if source.exists() and not link.exists():
                link.symlink_to(source, target_is_directory=source.is_dir())
    return target


class _CodeStore:
    """Each code version unzipped once into a private directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._dirs: dict[tuple[str, str], Path] = {}

    def directory(self, spec: FunctionSpec) -> Path:
        key = (spec.arn, spec.code_sha256)
        with self._lock:
            found = self._dirs.get(key)
        if found is not None:
            return found
        data = self._bytes(spec)
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if digest != spec.code_sha256:
            raise _ServiceError(f"the code of {spec.name} does not match its CodeSha256 (updated meanwhile?)")
        final = self.root / f"{spec.name}-{hashlib.sha256(data).hexdigest()[:16]}"
        if not final.is_dir():
            work = Path(tempfile.mkdtemp(dir=self.root, prefix=".unzip-"))
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.infolist():
                    path = (work / member.filename).resolve()
                    if not path.is_relative_to(work.resolve()):
                        raise _ServiceError(f"the code of {spec.name} holds a path outside its root: {member.filename}")
                archive.extractall(work)
            try:
                work.rename(final)
            except OSError:  # another thread got there first
                shutil.rmtree(work, ignore_errors=True)
        with self._lock:
            self._dirs[key] = final
        return final

    @staticmethod
    def _bytes(spec: FunctionSpec) -> bytes:
        from moto.awslambda.models import lambda_backends

        try:
            function = lambda_backends[spec.account][spec.region].get_function(spec.arn)
        except Exception as err:
            raise _ServiceError(f"the function {spec.arn} cannot be read from the backend: {err}") from None
        data = getattr(function, "code_bytes", b"") or b""
        return bytes(data)


# --------------------------------------------------------------------------------------------------
# One execution environment: a warm interpreter
# --------------------------------------------------------------------------------------------------


class _Exited(Exception):
    pass


class _TimedOut(Exception):
    pass


def _write_message(fd: int, message: Mapping[str, Any]) -> None:
    data = json.dumps(message).encode("utf-8")
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_message(fd: int, deadline: float) -> dict[str, Any]:
    def exactly(n: int) -> bytes:
        chunks: list[bytes] = []
        left = n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise _TimedOut
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise _TimedOut
            chunk = os.read(fd, left)
            if not chunk:
                raise _Exited
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    (size,) = struct.unpack(">I", exactly(4))
    decoded: dict[str, Any] = json.loads(exactly(size))
    return decoded


class FunctionProcess:
    """A function's interpreter: started, initialised, invoked one event at a time, killed."""

    def __init__(self, key: tuple[Any, ...], spec: FunctionSpec, env: dict[str, str], log_file: IO[bytes]) -> None:
        self.key = key
        self.spec = spec
        self.created = time.monotonic()
        self.last_used = self.created
        self.log_file = log_file
        self.invocations = 0
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-u",
                    "-c",
                    BOOTSTRAP,
                    str(to_child_r),
                    str(from_child_w),
                    env["LAMBDA_TASK_ROOT"],
                    env["LAMBDA_RUNTIME_DIR"],
                ],
                env=env,
                cwd=env["LAMBDA_TASK_ROOT"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(to_child_r, from_child_w),
                start_new_session=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def init(self, timeout_s: float) -> dict[str, Any] | None:
        """Wait for the handler's module to load: None when ready, else Lambda's error body."""
        try:
            reply = _read_message(self._from_child, time.monotonic() + timeout_s)
        except _TimedOut:
            self.kill()
            return {"errorType": "Sandbox.Timedout", "errorMessage": f"init timed out after {timeout_s:.2f} seconds"}
        except (_Exited, OSError, ValueError):
            return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited during init: {self._exit()}"}
        if reply.get("type") == "ready":
            return None
        self.kill()
        return reply

    def invoke(self, message: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Lambda's answer for one event: ``{"type": "result"|"error", …}``; the process is dead after a
        timeout or exit (``alive()`` says so)."""
        self.invocations += 1
        request_id = str(message["request_id"])
        try:
            _write_message(self._to_child, message)
            reply = _read_message(self._from_child, time.monotonic() + timeout_s)
        except _TimedOut:
            self.kill()
            when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            return {
                "type": "error",
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"{when} {request_id} Task timed out after {timeout_s:.2f} seconds",
            }
        except (_Exited, OSError, ValueError):  # ValueError: select on a descriptor closed by kill()
            return {
                "type": "error",
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {self._exit()}",
            }
        finally:
            self.last_used = time.monotonic()
        return reply

    def _exit(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            return f"signal: {signal.Signals(-code).name.lower().removeprefix('sig')}"
        return f"exit status {code}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._to_child = self._from_child = -1


# --------------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------------


class LambdaRuntime:
    """Runs the emulator's enabled DynamoDB-stream event source mappings (see the module docstring)."""

    def __init__(self, endpoint: str, *, ca_bundle: Path | None = None, workdir: Path | None = None) -> None:
        self.endpoint = endpoint
        self.ca_bundle = ca_bundle
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="migrator-lambda-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        (self.workdir / "code").mkdir(exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.clients = _Clients(endpoint, ca_bundle)
        self._code = _CodeStore(self.workdir / "code")
        self._libraries: Path | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._states: dict[str, _MappingState] = {}
        self._workers: dict[str, _Worker] = {}
        self._idle: dict[tuple[Any, ...], list[FunctionProcess]] = {}
        self._busy: set[FunctionProcess] = set()
        self._logs: dict[str, IO[bytes]] = {}
        self._discovery: threading.Thread | None = None
        self.cycles = 0  # discovery passes so far (tests wait on it rather than on the clock)

    # lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._libraries = runtime_libraries(self.workdir / "runtime")
        self._discovery = threading.Thread(target=self._discover, name="lambda-discovery", daemon=True)
        self._discovery.start()

    def stop(self) -> None:
        """Stop discovery, kill every interpreter, let the workers end (the server is still up)."""
        self._stop.set()
        if self._discovery is not None:
            self._discovery.join(timeout=10)
        with self._lock:
            processes = [p for ps in self._idle.values() for p in ps] + list(self._busy)
            self._idle.clear()
            workers = list(self._workers.values())
        for p in processes:
            p.kill()
        for w in workers:
            w.thread.join(timeout=10)
        with self._lock:
            for f in self._logs.values():
                f.close()
            self._logs.clear()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stopping(self) -> bool:
        return self._stop.is_set()

    # what the emulator exposes --------------------------------------------------------------------

    def stats(self) -> dict[str, MappingStats]:
        with self._lock:
            states = list(self._states.values())
        out: dict[str, MappingStats] = {}
        for s in states:
            with s.lock:
                out[s.uuid] = replace(s.stats)
        return out

    def log_path(self, function_name: str) -> Path:
        """Where the function's output (and Lambda's START/END/REPORT lines) are written."""
        return self.workdir / "logs" / f"{function_name}.log"

    def wait_caught_up(self, timeout_s: float, mappings: Collection[str] | None = None) -> bool:
        """True once every enabled mapping (of ``mappings``, UUIDs, if given) has found nothing more to
        read, and nothing left to retry, after this call began; False when ``timeout_s`` passed first."""
        since = time.monotonic()
        deadline = since + timeout_s
        start_cycle = self.cycles
        while time.monotonic() < deadline and not self.stopping():
            if self.cycles >= start_cycle + 2 and self._all_caught_up(since, mappings):
                return True
            self._stop.wait(0.05)
        return False

    def _all_caught_up(self, since: float, mappings: Collection[str] | None) -> bool:
        for _, esm in self._enabled_stream_mappings():
            if mappings is not None and str(esm.uuid) not in mappings:
                continue
            with self._lock:
                state = self._states.get(esm.uuid)
                worker = self._workers.get(esm.uuid)
            if state is None or worker is None or not worker.thread.is_alive():
                return False
            with state.lock:
                shards = list(state.shards.values())
                if not shards:
                    return False
                for shard in shards:
                    if shard.finished:
                        continue
                    if shard.pending or shard.carry or shard.empty_at < since:
                        return False
        return True

    # discovery ------------------------------------------------------------------------------------

    @staticmethod
    def _enabled_stream_mappings() -> list[tuple[str, Any]]:
        from moto.awslambda.models import lambda_backends

        found: list[tuple[str, Any]] = []
        try:
            accounts = list(lambda_backends.items())
            for _, regions in accounts:
                for _, backend in list(regions.items()):
                    for esm in list(backend._event_source_mappings.values()):
                        arn = str(getattr(esm, "event_source_arn", ""))
                        if ":dynamodb:" in arn and "/stream/" in arn and esm.enabled:
                            found.append((str(esm.arn), esm))
        except RuntimeError:  # a dict changed size under us: the next pass sees it
            pass
        return found

    def _discover(self) -> None:
        while not self._stop.is_set():
            try:
                for mapping_arn, esm in self._enabled_stream_mappings():
                    self._ensure_worker(mapping_arn, esm)
                self._reap_idle()
            except Exception:  # never let discovery die
                log.exception("lambda discovery failed")
            self.cycles += 1
            self._stop.wait(DISCOVERY_S)

    def _ensure_worker(self, mapping_arn: str, esm: Any) -> None:
        uuid_ = str(esm.uuid)
        with self._lock:
            worker = self._workers.get(uuid_)
            if worker is not None and worker.thread.is_alive():
                return
            state = self._states.get(uuid_)
            if state is None:
                state = _MappingState(uuid_, MappingStats(uuid_, str(esm.function_arn), str(esm.event_source_arn)))
                self._states[uuid_] = state
            account, region = mapping_arn.split(":")[4], mapping_arn.split(":")[3]
            worker = _Worker(self, state, account, region)
            self._workers[uuid_] = worker
        worker.thread.start()

    # execution environments -----------------------------------------------------------------------

    def _log_file(self, function_name: str) -> IO[bytes]:
        with self._lock:
            f = self._logs.get(function_name)
            if f is None:
                f = open(self.log_path(function_name), "ab", buffering=0)  # noqa: SIM115 (closed by stop())
                self._logs[function_name] = f
            return f

    def _log(self, function_name: str, line: str) -> None:
        self._log_file(function_name).write((line + "\n").encode("utf-8"))

    def _environment(self, spec: FunctionSpec, code_dir: Path, creds: Mapping[str, str]) -> dict[str, str]:
        assert self._libraries is not None
        today = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
        env = dict(spec.environment)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"],
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[{spec.version_name}]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "LAMBDA_TASK_ROOT": str(code_dir),
                "LAMBDA_RUNTIME_DIR": str(self._libraries),
                "_HANDLER": spec.handler,
                "TZ": ":UTC",
                "LANG": "en_US.UTF-8",
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                # emulator only: every client of the function talks to the emulator, reads no operator config
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        if self.ca_bundle is not None:  # emulator only: its clients trust the emulator's CA
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return env

    def _acquire(self, spec: FunctionSpec, code_dir: Path) -> tuple[FunctionProcess | None, dict[str, Any] | None]:
        """A warm interpreter for ``spec``, or a fresh one (with its init error, if it failed)."""
        key = (spec, str(code_dir))
        retired: list[FunctionProcess] = []
        with self._lock:
            for other in [k for k in self._idle if k != key and k[0].arn == spec.arn]:
                retired.extend(self._idle.pop(other))  # the function changed: its old environments go
            idle = self._idle.get(key, [])
            while idle:
                proc = idle.pop()
                if proc.alive() and time.monotonic() - proc.created < CREDENTIALS_MAX_AGE_S:
                    self._busy.add(proc)
                    break
                retired.append(proc)
            else:
                proc = None
        for p in retired:
            p.kill()
        if proc is not None:
            return proc, None
        creds, _ = self.clients.credentials(spec.role, spec.name)
        env = self._environment(spec, code_dir, creds)
        proc = FunctionProcess(key, spec, env, self._log_file(spec.name))
        with self._lock:
            self._busy.add(proc)
        if self.stopping():
            proc.kill()
        error = proc.init(INIT_TIMEOUT_S + spec.timeout_s)
        if error is not None:
            self._release(proc)
            return None, error
        return proc, None

    def _release(self, proc: FunctionProcess) -> None:
        surplus: list[FunctionProcess] = [proc]
        with self._lock:
            self._busy.discard(proc)
            if proc.alive() and not self.stopping():
                self._idle.setdefault(proc.key, []).append(proc)
                idle = sorted((p for ps in self._idle.values() for p in ps), key=lambda p: p.last_used)
                surplus = idle[: max(0, len(idle) - MAX_IDLE_PROCESSES)]
                for p in surplus:
                    self._idle[p.key].remove(p)
                    if not self._idle[p.key]:
                        del self._idle[p.key]
        for p in surplus:
            p.kill()

    def _reap_idle(self) -> None:
        now = time.monotonic()
        dead: list[FunctionProcess] = []
        with self._lock:
            for key, procs in list(self._idle.items()):
                keep = [p for p in procs if p.alive() and now - p.last_used < IDLE_PROCESS_S]
                dead.extend(p for p in procs if p not in keep)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for p in dead:
            p.kill()

    def invoke(self, spec: FunctionSpec, event: Mapping[str, Any]) -> InvokeResult:
        """Invoke ``spec`` with ``event`` synchronously (RequestResponse), in a warm or fresh interpreter."""
        if spec.package_type != "Zip" or not spec.runtime.startswith("python"):
            return InvokeResult(
                str(uuid.uuid4()),
                False,
                error_type="Runtime.InvalidRuntime",
                error_message=f"the emulator runs only Python zip functions, not {spec.package_type} {spec.runtime}",
            )
        code_dir = self._code.directory(spec)
        request_id = str(uuid.uuid4())
        init_started = time.monotonic()
        proc, init_error = self._acquire(spec, code_dir)
        cold = proc is None or proc.invocations == 0
        init_s = time.monotonic() - init_started if cold else 0.0
        self._log(spec.name, f"START RequestId: {request_id} Version: {spec.version_name}")
        started = time.monotonic()
        if proc is None:
            reply: dict[str, Any] = {**(init_error or {}), "type": "error"}
        else:
            message = {
                "event": event,
                "request_id": request_id,
                "deadline_ms": int(time.time() * 1000 + spec.timeout_s * 1000),
                "invoked_function_arn": spec.arn,
            }
            try:
                reply = proc.invoke(message, float(spec.timeout_s))
            finally:
                self._release(proc)
        duration = time.monotonic() - started  # as Lambda's Duration: the init phase is apart
        self._log(spec.name, f"END RequestId: {request_id}")
        init = f"\tInit Duration: {init_s * 1000:.2f} ms" if cold else ""
        self._log(
            spec.name,
            f"REPORT RequestId: {request_id}\tDuration: {duration * 1000:.2f} ms\tMemory Size: {spec.memory_mb} MB"
            + init,
        )
        if reply.get("type") == "result":
            try:
                payload = json.loads(str(reply.get("payload")))
            except ValueError:
                payload = None
            return InvokeResult(request_id, True, payload=payload, duration_s=duration, cold=cold)
        return InvokeResult(
            request_id,
            False,
            error_type=str(reply.get("errorType") or "Unhandled"),
            error_message=str(reply.get("errorMessage") or ""),
            duration_s=duration,
            cold=cold,
        )


# --------------------------------------------------------------------------------------------------
# One mapping's poller
# --------------------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, runtime: LambdaRuntime, state: _MappingState, account: str, region: str) -> None:
        self.runtime = runtime
        self.state = state
        self.account = account
        self.region = region
        self.spec: FunctionSpec | None = None
        self.shards_read_at = -SHARD_REFRESH_S
        self.thread = threading.Thread(target=self.run, name=f"lambda-esm-{state.uuid[:8]}", daemon=True)

    # plumbing -------------------------------------------------------------------------------------

    def _stats(self, **changes: Any) -> None:
        with self.state.lock:
            for name, value in changes.items():
                setattr(self.state.stats, name, value)

    def _add(self, **amounts: float) -> None:
        with self.state.lock:
            for name, amount in amounts.items():
                setattr(self.state.stats, name, getattr(self.state.stats, name) + amount)

    def _config(self) -> _MappingConfig:
        lam = self.runtime.clients.service("lambda", self.account, self.region)
        try:
            return _MappingConfig.from_api(lam.get_event_source_mapping(UUID=self.state.uuid))
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                raise _Gone from None
            raise _ServiceError(f"GetEventSourceMapping: {err}") from None
        except BotoCoreError as err:
            raise _ServiceError(f"GetEventSourceMapping: {err}") from None

    def _function(self, cfg: _MappingConfig) -> FunctionSpec:
        lam = self.runtime.clients.service("lambda", self.account, self.region)
        try:
            spec = FunctionSpec.from_api(lam.get_function(FunctionName=cfg.function_arn)["Configuration"])
        except (ClientError, BotoCoreError) as err:
            raise _ServiceError(f"GetFunction {cfg.function_arn}: {err}") from None
        self.spec = spec
        return spec

    def _streams(self, cfg: _MappingConfig) -> Any:
        spec = self.spec or self._function(cfg)
        return self.runtime.clients.as_role("dynamodbstreams", spec.role, cfg.stream_arn.split(":")[3])

    def _sleep(self, seconds: float) -> None:
        self.runtime._stop.wait(max(0.0, seconds))

    # the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self.runtime.stopping():
            try:
                cfg = self._config()
                if not cfg.enabled:
                    self._park("Disabled")
                    return
                self._stats(state="Enabled", function_arn=cfg.function_arn, event_source_arn=cfg.stream_arn)
                self._step(cfg)
                failures = 0
            except _Gone:
                self._park("Deleted")
                return
            except (_ServiceError, ClientError, BotoCoreError) as err:
                failures += 1
                log.warning("event source mapping %s: %s", self.state.uuid, err)
                self._sleep(min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** min(failures, 10)))
            except Exception:
                failures += 1
                log.exception("event source mapping %s failed", self.state.uuid)
                self._sleep(RETRY_BACKOFF_MAX_S)

    def _park(self, state: str) -> None:
        with self.state.lock:
            for shard in self.state.shards.values():
                shard.forget_reads()
            self.state.stats.state = state

    def _refresh_shards(self, cfg: _MappingConfig) -> None:
        if self.state.stream_arn != cfg.stream_arn:
            with self.state.lock:
                self.state.shards.clear()
                self.state.stream_arn = cfg.stream_arn
            self.shards_read_at = -SHARD_REFRESH_S
        if time.monotonic() - self.shards_read_at < SHARD_REFRESH_S:
            return
        streams = self._streams(cfg)
        listed: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": cfg.stream_arn}
        try:
            while True:
                desc = streams.describe_stream(**kwargs)["StreamDescription"]
                listed.extend(desc.get("Shards", []))
                last = desc.get("LastEvaluatedShardId")
                if not last:
                    break
                kwargs["ExclusiveStartShardId"] = last
        except (ClientError, BotoCoreError) as err:
            raise _ServiceError(f"DescribeStream {cfg.stream_arn}: {err}") from None
        with self.state.lock:
            for s in listed:
                shard = self.state.shards.get(s["ShardId"])
                if shard is None:
                    shard = _Shard(s["ShardId"], s.get("ParentShardId"))
                    self.state.shards[s["ShardId"]] = shard
                shard.closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
        self.shards_read_at = time.monotonic()

    def _ready(self) -> list[_Shard]:
        """Shards that may be read now: not finished, and their parent (if still listed) finished."""
        with self.state.lock:
            shards = self.state.shards
            return [
                s
                for s in shards.values()
                if not s.finished and (s.parent_id is None or s.parent_id not in shards or shards[s.parent_id].finished)
            ]

    def _step(self, cfg: _MappingConfig) -> None:
        self._refresh_shards(cfg)
        ready = self._ready()
        if not ready:
            self._sleep(IDLE_POLL_MAX_S)
            return
        shard = min(ready, key=lambda s: s.due)
        wait = shard.due - time.monotonic()
        if wait > 0:
            self._sleep(min(wait, IDLE_POLL_MAX_S))
            return  # read the mapping again before doing anything
        if shard.pending:
            batch = shard.pending.pop(0)
        else:
            gathered = self._gather(shard, cfg)
            if gathered is None:
                return
            batch = gathered
        try:
            self._deliver(shard, batch, cfg)
        except Exception:
            # _ServiceError: not an attempt, the batch never reached the function. Anything else is a
            # fault of this runtime: the batch is kept too (delivered again rather than lost).
            shard.pending.insert(0, batch)
            shard.due = time.monotonic() + RETRY_BACKOFF_MAX_S
            raise

    # reading --------------------------------------------------------------------------------------

    def _iterator(self, shard: _Shard, cfg: _MappingConfig, streams: Any) -> str | None:
        kwargs: dict[str, Any] = {"StreamArn": cfg.stream_arn, "ShardId": shard.shard_id}
        if shard.fetched is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.fetched)
        elif not shard.started and cfg.starting_position == "LATEST":
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        shard.started = True
        iterator: str | None = streams.get_shard_iterator(**kwargs).get("ShardIterator")
        return iterator

    def _read(self, shard: _Shard, cfg: _MappingConfig, limit: int) -> list[dict[str, Any]]:
        streams = self._streams(cfg)
        for _ in range(3):
            try:
                if shard.iterator is None:
                    shard.iterator = self._iterator(shard, cfg, streams)
                    if shard.iterator is None:
                        shard.finished = shard.closed
                        return []
                response = streams.get_records(ShardIterator=shard.iterator, Limit=limit)
            except ClientError as err:
                code = error_code(err)
                if code == "ExpiredIteratorException":
                    shard.iterator = None
                    continue
                if code == "TrimmedDataAccessException":  # the checkpoint is past retention: resume at the horizon
                    log.warning("event source mapping %s: shard %s trimmed", self.state.uuid, shard.shard_id)
                    shard.fetched = shard.checkpoint = None
                    shard.iterator = None
                    continue
                raise _ServiceError(f"GetRecords {shard.shard_id}: {err}") from None
            except BotoCoreError as err:
                raise _ServiceError(f"GetRecords {shard.shard_id}: {err}") from None
            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
                shard.finished = True
            records = [lambda_record(r, cfg.stream_arn) for r in response.get("Records", [])]
            if records:
                shard.fetched = _seq(records[-1])
            return records
        raise _ServiceError(f"GetRecords {shard.shard_id}: no usable iterator")

    def _gather(self, shard: _Shard, cfg: _MappingConfig) -> _Batch | None:
        started = time.monotonic()
        records, shard.carry = shard.carry, []
        size = sum(len(json.dumps(r)) for r in records)
        while len(records) < cfg.batch_size and not shard.finished and not self.runtime.stopping():
            got = self._read(shard, cfg, min(MAX_GET_RECORDS, cfg.batch_size - len(records)))
            for i, record in enumerate(got):
                record_size = len(json.dumps(record))
                if records and size + record_size > MAX_PAYLOAD_BYTES - 64:
                    shard.carry = got[i:]
                    break
                records.append(record)
                size += record_size
            if shard.carry or not records:
                break
            remaining = cfg.window_s - (time.monotonic() - started)
            if remaining <= 0:
                break
            if not got:
                self._sleep(min(IDLE_POLL_S, remaining))
        if len(records) > cfg.batch_size:  # the batch size went down since these were read
            shard.carry = records[cfg.batch_size :] + shard.carry
            records = records[: cfg.batch_size]
        if not records:
            shard.idle_delay = min(shard.idle_delay * 2, IDLE_POLL_MAX_S)
            shard.due = time.monotonic() + shard.idle_delay
            shard.empty_at = time.monotonic()
            return None
        shard.idle_delay = IDLE_POLL_S
        shard.due = 0.0
        return _Batch(records)

    # delivering -----------------------------------------------------------------------------------

    def _checkpoint(self, shard: _Shard, record: Mapping[str, Any]) -> None:
        seq = _seq(record)
        if shard.checkpoint is None or int(seq) > int(shard.checkpoint):
            shard.checkpoint = seq

    def _deliver(self, shard: _Shard, batch: _Batch, cfg: _MappingConfig) -> None:
        if cfg.max_age_s >= 0:
            now = time.time()
            old = 0
            while old < len(batch.records):
                created = _created(batch.records[old])
                if created is None or now - created <= cfg.max_age_s:
                    break
                old += 1
            if old:
                expired = replace(batch, records=batch.records[:old])
                self._give_up(shard, expired, cfg, "RecordAgeExceeded")
                batch.records = batch.records[old:]
                if not batch.records:
                    return
        spec = self._function(cfg)
        event = {"Records": batch.records}
        sent_at = time.time()
        last_created = _created(batch.records[-1])
        try:
            result = self.runtime.invoke(spec, event)
        except _ServiceError:
            raise
        except Exception as err:  # the function could not be started: Lambda's side, not an attempt
            raise _ServiceError(f"invoking {spec.name}: {type(err).__name__}: {err}") from err
        if self.runtime.stopping():
            return
        batch.attempts += 1
        batch.request_id = result.request_id
        batch.function_error = not result.ok
        self._metrics(spec, result, None if last_created is None else max(0.0, sent_at - last_created))
        with self.state.lock:
            st = self.state.stats
            st.invocations += 1
            st.errors += 0 if result.ok else 1
            st.cold_starts += 1 if result.cold else 0
            st.function_time_s += result.duration_s
            st.first_invocation_at = sent_at if st.first_invocation_at is None else st.first_invocation_at
            st.last_invocation_at = sent_at + result.duration_s
        if not result.ok:
            log.info(
                "event source mapping %s: %s failed: %s: %s",
                self.state.uuid,
                spec.name,
                result.error_type,
                result.error_message,
            )
        failed_at = self._failed_index(result, batch, cfg) if result.ok else 0
        if failed_at is None:  # the whole batch went through
            self._checkpoint(shard, batch.records[-1])
            self._add(batches=1, records=len(batch.records))
            return
        whole = not result.ok or failed_at < 0
        if not whole:
            if failed_at > 0:
                self._checkpoint(shard, batch.records[failed_at - 1])
                self._add(records=failed_at)
            self._add(partial_batches=1)
            batch.records = batch.records[failed_at:]
        if cfg.max_retry >= 0 and batch.attempts > cfg.max_retry:
            self._give_up(shard, batch, cfg, "RetryAttemptsExhausted")
            return
        if whole and cfg.bisect and len(batch.records) > 1:
            half = len(batch.records) // 2
            pieces = [replace(batch, records=batch.records[:half]), replace(batch, records=batch.records[half:])]
        else:
            pieces = [batch]
        shard.pending[:0] = pieces
        shard.due = time.monotonic() + min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** (batch.attempts - 1))

    @staticmethod
    def _failed_index(result: InvokeResult, batch: _Batch, cfg: _MappingConfig) -> int | None:
        """None: all succeeded; the index of the lowest reported failure; -1: an unusable report (the
        whole batch failed)."""
        if not cfg.report_failures or not isinstance(result.payload, Mapping):
            return None
        failures = result.payload.get("batchItemFailures")
        if not failures:
            return None
        if not isinstance(failures, list):
            return -1
        positions = {_seq(r): i for i, r in enumerate(batch.records)}
        lowest: int | None = None
        for failure in failures:
            ident = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
            if not isinstance(ident, str) or ident not in positions:
                return -1
            lowest = positions[ident] if lowest is None else min(lowest, positions[ident])
        return lowest

    def _give_up(self, shard: _Shard, batch: _Batch, cfg: _MappingConfig, condition: str) -> None:
        """Retries exhausted or records too old: the batch goes to the destination, the shard moves past it."""
        if cfg.on_failure:
            record = self._invocation_record(shard, batch, cfg, condition)
            for attempt in range(DESTINATION_ATTEMPTS):
                try:
                    self._send_to_destination(cfg, shard, record)
                    self._add(destination_objects=1)
                    break
                except (ClientError, BotoCoreError, _ServiceError) as err:
                    log.warning("event source mapping %s: destination %s: %s", self.state.uuid, cfg.on_failure, err)
                    if attempt == DESTINATION_ATTEMPTS - 1:
                        self._add(destination_errors=1)
                    else:
                        self._sleep(RETRY_BACKOFF_S * 2**attempt)
        self._checkpoint(shard, batch.records[-1])
        self._add(failed_batches=1, failed_records=len(batch.records))

    def _invocation_record(self, shard: _Shard, batch: _Batch, cfg: _MappingConfig, condition: str) -> dict[str, Any]:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if batch.function_error:
            response["functionError"] = "Unhandled"
        return {
            "requestContext": {
                "requestId": batch.request_id or str(uuid.uuid4()),
                "functionArn": cfg.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(time.time(), millis=True),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": _seq(batch.records[0]),
                "endSequenceNumber": _seq(batch.records[-1]),
                "approximateArrivalOfFirstRecord": _iso(_created(batch.records[0])),
                "approximateArrivalOfLastRecord": _iso(_created(batch.records[-1])),
                "batchSize": len(batch.records),
                "streamArn": cfg.stream_arn,
            },
            "payload": json.dumps({"Records": batch.records}),
        }

    def _send_to_destination(self, cfg: _MappingConfig, shard: _Shard, record: Mapping[str, Any]) -> None:
        destination = str(cfg.on_failure)
        spec = self.spec or self._function(cfg)
        parts = destination.split(":")
        service = parts[2] if len(parts) > 2 else ""
        if service == "s3":
            bucket = parts[5].split("/", 1)[0]
            now = dt.datetime.now(dt.UTC)
            key = f"aws/lambda/{cfg.uuid}/{shard.shard_id}/{now:%Y/%m/%d}/{now:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"
            s3 = self.runtime.clients.as_role("s3", spec.role, spec.region)
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode("utf-8"))
            return
        metadata = {k: v for k, v in record.items() if k != "payload"}  # SQS and SNS get the metadata only
        if service == "sqs":
            sqs = self.runtime.clients.as_role("sqs", spec.role, parts[3])
            url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(metadata))
            return
        if service == "sns":
            sns = self.runtime.clients.as_role("sns", spec.role, parts[3])
            sns.publish(TopicArn=destination, Message=json.dumps(metadata))
            return
        raise _ServiceError(f"unsupported on-failure destination {destination}")

    def _metrics(self, spec: FunctionSpec, result: InvokeResult, iterator_age_s: float | None) -> None:
        dimensions = [{"Name": "FunctionName", "Value": spec.name}]
        data: list[dict[str, Any]] = [
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": 1.0, "Unit": "Count"},
            {"MetricName": "Errors", "Dimensions": dimensions, "Value": 0.0 if result.ok else 1.0, "Unit": "Count"},
            {
                "MetricName": "Duration",
                "Dimensions": dimensions,
                "Value": result.duration_s * 1000,
                "Unit": "Milliseconds",
            },
        ]
        if iterator_age_s is not None:
            data.append(
                {
                    "MetricName": "IteratorAge",
                    "Dimensions": dimensions,
                    "Value": round(iterator_age_s * 1000),
                    "Unit": "Milliseconds",
                }
            )
        try:
            cloudwatch = self.runtime.clients.service("cloudwatch", spec.account, spec.region)
            cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)
        except (ClientError, BotoCoreError) as err:
            log.warning("metrics of %s not published: %s", spec.name, err)
