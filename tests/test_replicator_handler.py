"""The Lambda handler: cross-account writes, credential caching, batch item failures, one log line."""

from __future__ import annotations

import ast
import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from migrator.aws.session import AccountSession
from migrator.replicator import handler as lambda_handler

from .conftest import FAKE_KEY_ID, FAKE_SECRET, TARGET_ACCOUNT, make_table, stream_record
from .test_replicator_core import FakeDynamo, client_error, delete, keys, put

WRITER_ROLE = f"arn:aws:iam::{TARGET_ACCOUNT}:role/migrator-writer"
PACKAGE = Path(lambda_handler.__file__).resolve().parent


class Context:
    """The part of the Lambda context the handler uses."""

    def __init__(self, remaining_ms: float = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_ms)


@pytest.fixture
def assume_calls() -> Iterator[list[dict[str, Any]]]:
    """Every STS AssumeRole the handler makes (through boto3's default session)."""
    calls: list[dict[str, Any]] = []

    def spy(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    events = boto3._get_default_session().events
    events.register("provide-client-params.sts.AssumeRole", spy)
    yield calls
    events.unregister("provide-client-params.sts.AssumeRole", spy)


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, target: AccountSession, unique: str
) -> Iterator[str]:
    table = f"lambda-{unique}"
    make_table(target, table, stream=None, pitr=False)
    monkeypatch.setenv("TARGET_TABLE", table)
    monkeypatch.setenv("TARGET_REGION", "us-east-1")
    monkeypatch.setenv("WRITER_ROLE_ARN", WRITER_ROLE)
    monkeypatch.setenv("EXTERNAL_ID", "ext-1234")
    monkeypatch.setenv("TARGET_ENDPOINT_URL", moto_endpoint)
    lambda_handler.reset_credentials()
    yield table
    lambda_handler.reset_credentials()


def _event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def test_handler_writes_the_batch_into_the_target_account(
    lambda_env: str, target: AccountSession, insert_event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = lambda_handler.handler(_event(insert_event, put("b", 5, v={"N": "7"})), Context())
    assert out == {"batchItemFailures": []}
    ddb = target.client("dynamodb")  # the table exists only in the target account
    got = ddb.get_item(TableName=lambda_env, Key=keys("a"), ConsistentRead=True)["Item"]
    assert got == insert_event["dynamodb"]["NewImage"]
    assert ddb.get_item(TableName=lambda_env, Key=keys("b"))["Item"]["v"] == {"N": "7"}


def test_handler_applies_remove_and_ttl_events(lambda_env: str, target: AccountSession) -> None:
    ddb = target.client("dynamodb")
    ddb.put_item(TableName=lambda_env, Item=keys("a"))
    ddb.put_item(TableName=lambda_env, Item=keys("t"))
    ttl = stream_record("REMOVE", keys("t"), 9, old=keys("t"), ttl=True)
    assert lambda_handler.handler(_event(delete("a", 8), ttl), Context()) == {"batchItemFailures": []}
    assert ddb.scan(TableName=lambda_env)["Items"] == []


def test_handler_assumes_the_writer_role_with_the_external_id_once_across_invocations(
    lambda_env: str, assume_calls: list[dict[str, Any]]
) -> None:
    for i in range(5):
        lambda_handler.handler(_event(put(f"k{i}", i + 1)), Context())
    assert len(assume_calls) == 1
    assert assume_calls[0]["RoleArn"] == WRITER_ROLE
    assert assume_calls[0]["ExternalId"] == "ext-1234"


def test_handler_refreshes_credentials_five_minutes_before_expiry(
    lambda_env: str, assume_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_handler.handler(_event(put("a", 1)), Context())
    cached = lambda_handler._cached
    assert cached is not None
    assert len(assume_calls) == 1
    expires_at = cached.expires_at
    monkeypatch.setattr(lambda_handler, "_now", lambda: expires_at - 400)  # still 6+ minutes left
    lambda_handler.handler(_event(put("b", 2)), Context())
    assert len(assume_calls) == 1
    monkeypatch.setattr(lambda_handler, "_now", lambda: expires_at - 200)  # inside the 5-minute window
    lambda_handler.handler(_event(put("c", 3)), Context())
    assert len(assume_calls) == 2
    renewed = lambda_handler._cached
    assert renewed is not None
    assert renewed is not cached
    monkeypatch.setattr(lambda_handler, "_now", lambda: renewed.expires_at - 3000)  # new credentials are good
    lambda_handler.handler(_event(put("d", 4)), Context())
    assert len(assume_calls) == 2


def test_handler_drops_cached_credentials_when_the_token_is_refused(
    lambda_env: str, assume_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_handler.handler(_event(put("a", 1)), Context())
    assert lambda_handler._cached is not None
    refusing = FakeDynamo(table=lambda_env, fault=lambda n, r: client_error("ExpiredTokenException"))
    cached = lambda_handler._cached
    for timeouts in list(cached.clients):  # the warm client (one per timeout pair) now gets refused tokens
        monkeypatch.setitem(cached.clients, timeouts, refusing)
    out = lambda_handler.handler(_event(put("b", 2)), Context())
    assert out == {"batchItemFailures": [{"itemIdentifier": f"{2:021d}"}]}
    assert lambda_handler._cached is None
    lambda_handler.handler(_event(put("b", 2)), Context())
    assert len(assume_calls) == 2


class Countdown:
    """A Lambda context whose remaining time runs down with the clock, from ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


class ThrottlingEndpoint:
    """A local endpoint that answers STS AssumeRole and throttles every DynamoDB call (optionally late)."""

    ASSUMED = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
        "<AccessKeyId>ASIATHROTTLED</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
        "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser>"
        "<Arn>arn:aws:sts::111111111111:assumed-role/w/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId>"
        "</AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
        "</AssumeRoleResponse>"
    )

    def __init__(self, answer_after_s: float = 0.0) -> None:
        self.dynamodb_calls = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "DynamoDB" in (self.headers.get("X-Amz-Target") or ""):
                    outer.dynamodb_calls += 1
                    time.sleep(answer_after_s)
                    body = json.dumps(
                        {
                            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                            "message": "The level of configured provisioned throughput for the table was exceeded.",
                        }
                    ).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                else:
                    body = outer.ASSUMED.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (read timeout)
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ThrottlingEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize("answer_after_s", [0.0, 5.0], ids=["throttled at once", "throttled after 5 s"])
def test_under_endless_throttling_the_handler_returns_with_its_safety_margin_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer_after_s: float
) -> None:
    """The handler's real client (one attempt per call, timeouts bounded by the time left) against an
    endpoint that throttles every call: every retry is the core's, and it stops in time."""
    timeout_s, margin_s = 12.0, 5.0
    with ThrottlingEndpoint(answer_after_s) as endpoint:
        for name, value in {
            "TARGET_TABLE": "T",
            "TARGET_REGION": "us-east-1",
            "WRITER_ROLE_ARN": WRITER_ROLE,
            "EXTERNAL_ID": "ext-1234",
            "TARGET_ENDPOINT_URL": endpoint.url,
            "SAFETY_MARGIN_S": str(margin_s),
        }.items():
            monkeypatch.setenv(name, value)
        lambda_handler.reset_credentials()
        context = Countdown(timeout_s)
        records = [put("b", 41), put("a", 40), put("c", 42), put("a", 43)]
        try:
            out = lambda_handler.handler(_event(*records), context)
            left_ms = context.get_remaining_time_in_millis()
        finally:
            lambda_handler.reset_credentials()
    assert out == {"batchItemFailures": [{"itemIdentifier": f"{40:021d}"}]}
    assert json.loads(json.dumps(out)) == out  # the shape Lambda reads back
    assert left_ms >= margin_s * 1000, f"returned with {left_ms} ms left, inside the {margin_s} s margin"
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["failures"] == 3
    assert line["lowest_failed_sequence"] == f"{40:021d}"
    assert line["attempts"] == endpoint.dynamodb_calls >= 2  # one attempt per call, each one counted
    assert line["time_left_ms"] >= margin_s * 1000


def test_call_timeouts_fit_in_half_of_the_time_before_the_margin() -> None:
    assert lambda_handler.call_timeouts(None, 5.0) == (lambda_handler.CONNECT_TIMEOUT_S, lambda_handler.READ_TIMEOUT_S)
    connect, read = lambda_handler.call_timeouts(11.99, 5.0)
    assert connect + read == 3.0  # half of the 6 whole seconds before the margin
    assert lambda_handler.call_timeouts(11.98, 5.0) == (connect, read)  # warm invocations share one client
    assert (
        sum(lambda_handler.call_timeouts(299.9, 5.0))
        == lambda_handler.CONNECT_TIMEOUT_S + lambda_handler.READ_TIMEOUT_S
    )


def test_handler_logs_one_json_line_per_batch_without_credentials(
    lambda_env: str, capsys: pytest.CaptureFixture[str], assume_calls: list[dict[str, Any]]
) -> None:
    records = [put("a", 1), put("a", 2), delete("b", 3), put("c", 4)]
    records[0]["dynamodb"]["ApproximateCreationDateTime"] = 1_000_000_000.0
    lambda_handler.handler(_event(*records), Context())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["records_in"] == 4
    assert line["puts"] == 2
    assert line["deletes"] == 1
    assert line["retries"] == 0
    assert line["failures"] == 0
    assert line["oldest_record_age_s"] > 700_000_000  # from the oldest record's creation time
    cached = lambda_handler._cached
    assert cached is not None
    creds = cached.client._request_signer._credentials
    for secret in (creds.access_key, creds.secret_key, creds.token, FAKE_SECRET, FAKE_KEY_ID, "ext-1234"):
        assert secret not in lines[0]


def test_a_record_the_core_cannot_apply_is_reported_not_fatal(
    lambda_env: str, target: AccountSession, capsys: pytest.CaptureFixture[str]
) -> None:
    record = stream_record("MODIFY", keys("a"), 7)
    record["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    out = lambda_handler.handler(_event(put("ok", 6), record, put("later", 8)), Context())
    assert out == {"batchItemFailures": [{"itemIdentifier": f"{7:021d}"}]}  # the records before it are done
    ddb = target.client("dynamodb")
    assert "Item" in ddb.get_item(TableName=lambda_env, Key=keys("ok"), ConsistentRead=True)
    assert "Item" not in ddb.get_item(TableName=lambda_env, Key=keys("later"), ConsistentRead=True)  # comes again
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["refused_records"] == 2
    assert line["error_codes"] == ["RecordError"]
    assert "NewImage" in line["errors"][0]


def test_handler_with_an_empty_batch_reports_no_failures(lambda_env: str) -> None:
    assert lambda_handler.handler({"Records": []}, Context()) == {"batchItemFailures": []}


def test_handler_names_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TARGET_TABLE", "WRITER_ROLE_ARN", "TARGET_REGION", "EXTERNAL_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(lambda_handler.ConfigurationError, match=r"TARGET_TABLE.*WRITER_ROLE_ARN"):
        lambda_handler.handler(_event(put("a", 1)), Context())


def test_the_package_imports_only_stdlib_boto_and_itself() -> None:
    allowed_roots = set(sys.stdlib_module_names) | {"boto3", "botocore"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:
                    continue  # relative: inside the package
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed_roots, f"{path.name} imports {roots - allowed_roots}"


def test_the_package_loads_alone_as_top_level_replicator(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "replicator", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sys, replicator.handler as h\n"
        "assert h.handler.__module__ == 'replicator.handler'\n"
        "bad = sorted(m for m in sys.modules if m == 'migrator' or m.startswith('migrator.'))\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
