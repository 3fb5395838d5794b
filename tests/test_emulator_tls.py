"""The emulator serves HTTPS, and bucket policies are evaluated as on AWS.

Both belong to :mod:`migrator.dev.emulator`: the server's TLS (a CA made at start, trusted through
``AWS_CA_BUNDLE``), ``aws:SecureTransport`` in bucket-policy evaluation, and statements whose Condition
does not hold not applying (Allow and Deny alike), where moto refused the request.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from migrator.aws.session import AccountSession
from migrator.dev.emulator import Emulator, conditions_match, start_emulator

from .conftest import REGION, SOURCE_ACCOUNT


def _tls_only(bucket: str) -> dict[str, Any]:
    """The project's hardening of a bucket: every request not over TLS is refused, whoever asks."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _statement(bucket: str, effect: str, condition: dict[str, Any], action: str = "s3:*") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": effect,
                "Principal": "*",
                "Action": action,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": condition,
            }
        ],
    }


def _refused(err: botocore.exceptions.ClientError) -> bool:
    return int(err.response["ResponseMetadata"]["HTTPStatusCode"]) == 403


@pytest.fixture(scope="module")
def plain() -> Iterator[Emulator]:
    """A second emulator of the session's moto, serving plain HTTP (same backends, same buckets)."""
    running = start_emulator(run_lambda=False, tls=False)
    yield running
    running.stop()


def _s3(endpoint: str) -> Any:
    return AccountSession(
        SOURCE_ACCOUNT, REGION, f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops", endpoint_url=endpoint
    ).client("s3")


def _bucket(s3: Any, name: str, policy: dict[str, Any] | None) -> str:
    s3.create_bucket(Bucket=name)
    if policy is not None:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return name


# The server ------------------------------------------------------------------------------------------


def test_the_emulator_serves_https_with_a_ca_of_its_own(emulator: Emulator, unique: str) -> None:
    assert emulator.endpoint.startswith("https://127.0.0.1:")
    assert emulator.ca_bundle is not None and emulator.ca_bundle.is_file()
    assert oct(emulator.ca_bundle.parent.stat().st_mode & 0o777) == "0o700"
    assert os.environ["AWS_CA_BUNDLE"] == str(emulator.ca_bundle)  # the session's clients trust it
    assert _s3(emulator.endpoint).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200

    # The certificate is really checked: a client trusting only the public CAs refuses it.
    stranger = boto3.client(
        "sts",
        endpoint_url=emulator.endpoint,
        region_name=REGION,
        verify=True,  # botocore's own bundle (certifi), not AWS_CA_BUNDLE
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.SSLError):
        stranger.get_caller_identity()


def test_the_certificate_names_localhost_too(emulator: Emulator) -> None:
    _, port = emulator.server.get_host_and_port()
    context = ssl.create_default_context(cafile=str(emulator.ca_bundle))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_connection_that_never_shakes_hands_stalls_no_one(emulator: Emulator) -> None:
    _, port = emulator.server.get_host_and_port()
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # connected, silent
        started = time.monotonic()
        _s3(emulator.endpoint).list_buckets()
        assert time.monotonic() - started < 5


def test_a_stopped_emulator_leaves_no_ca_behind() -> None:
    running = start_emulator(run_lambda=False)
    ca = running.ca_bundle
    assert ca is not None and ca.is_file()
    assert running.client_environment() == {"AWS_CA_BUNDLE": str(ca)}
    running.stop()
    assert not ca.exists() and not ca.parent.exists()


def test_a_plain_http_emulator_has_no_ca(plain: Emulator) -> None:
    assert plain.endpoint.startswith("http://127.0.0.1:")
    assert plain.ca_bundle is None and plain.client_environment() == {}


# Bucket policies ----------------------------------------------------------------------------------


def test_a_tls_only_bucket_takes_objects_over_tls(emulator: Emulator, unique: str) -> None:
    s3 = _s3(emulator.endpoint)
    bucket = _bucket(s3, f"tls-only-{unique}", _tls_only(f"tls-only-{unique}"))

    s3.put_object(Bucket=bucket, Key="state/doc.json", Body=b"{}")
    assert s3.get_object(Bucket=bucket, Key="state/doc.json")["Body"].read() == b"{}"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["state/doc.json"]
    s3.delete_object(Bucket=bucket, Key="state/doc.json")


def test_a_tls_only_bucket_refuses_objects_over_plain_http(emulator: Emulator, plain: Emulator, unique: str) -> None:
    bucket = _bucket(_s3(emulator.endpoint), f"tls-only-{unique}", _tls_only(f"tls-only-{unique}"))
    _s3(emulator.endpoint).put_object(Bucket=bucket, Key="over-tls", Body=b"x")
    s3 = _s3(plain.endpoint)

    with pytest.raises(botocore.exceptions.ClientError) as put:
        s3.put_object(Bucket=bucket, Key="over-http", Body=b"x")
    assert _refused(put.value)
    with pytest.raises(botocore.exceptions.ClientError) as get:
        s3.get_object(Bucket=bucket, Key="over-tls")
    assert _refused(get.value)
    with pytest.raises(botocore.exceptions.ClientError):
        _s3(emulator.endpoint).head_object(Bucket=bucket, Key="over-http")  # nothing was written


NOT_HOLDING = [
    pytest.param({"StringEquals": {"aws:SecureTransport": "false"}}, id="a-value-the-request-does-not-have"),
    pytest.param({"StringEquals": {"aws:SourceVpce": "vpce-0123"}}, id="a-key-the-request-does-not-carry"),
]


@pytest.mark.parametrize("condition", NOT_HOLDING)
def test_a_deny_whose_condition_does_not_hold_does_not_deny(
    emulator: Emulator, unique: str, condition: dict[str, Any]
) -> None:
    s3 = _s3(emulator.endpoint)
    bucket = _bucket(s3, f"deny-vpce-{unique}", _statement(f"deny-vpce-{unique}", "Deny", condition))

    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_a_deny_whose_condition_holds_denies(emulator: Emulator, unique: str) -> None:
    s3 = _s3(emulator.endpoint)
    condition = {"Bool": {"aws:SecureTransport": "true"}}  # holds over TLS: applies as written
    bucket = _bucket(s3, f"deny-tls-{unique}", _statement(f"deny-tls-{unique}", "Deny", condition))

    with pytest.raises(botocore.exceptions.ClientError) as put:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert _refused(put.value)


@pytest.mark.parametrize("condition", NOT_HOLDING)
def test_an_allow_whose_condition_does_not_hold_does_not_deny(
    emulator: Emulator, unique: str, condition: dict[str, Any]
) -> None:
    s3 = _s3(emulator.endpoint)
    bucket = _bucket(s3, f"allow-vpce-{unique}", _statement(f"allow-vpce-{unique}", "Allow", condition))

    s3.put_object(Bucket=bucket, Key="k", Body=b"v")  # the caller's own permissions decide, as on AWS
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_moto_keeps_its_own_iam_statement_evaluation() -> None:
    """Only bucket policies are evaluated anew; IAM's identity and trust-policy evaluation are moto's."""
    from moto.iam.access_control import IAMPolicyStatement

    assert IAMPolicyStatement.is_action_permitted.__module__ == "moto.iam.access_control"


# Conditions, as IAM evaluates them -----------------------------------------------------------------

TLS = {"aws:SecureTransport": "true"}
PLAIN = {"aws:SecureTransport": "false"}


@pytest.mark.parametrize(
    ("condition", "context", "holds"),
    [
        (None, {}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, PLAIN, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, TLS, False),
        ({"Bool": {"aws:SecureTransport": ["false"]}}, PLAIN, True),
        ({"Bool": {"aws:SecureTransport": False}}, PLAIN, True),  # a JSON boolean, as some writers emit
        ({"Bool": {"AWS:SECURETRANSPORT": "False"}}, PLAIN, True),  # keys and Bool values: any case
        ({"Bool": {"aws:SecureTransport": "false"}}, {}, False),  # absent key: does not hold
        ({"BoolIfExists": {"aws:SecureTransport": "false"}}, {}, True),
        ({"Null": {"aws:SecureTransport": "true"}}, {}, True),
        ({"Null": {"aws:SecureTransport": "false"}}, {}, False),
        ({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, {}, False),
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, {}, True),  # negated: absent key holds
        ({"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}, True),  # OR over a key's values
        ({"StringLike": {"k": "pre*"}}, {"k": "prefix"}, True),
        ({"StringLike": {"k": "p?e"}}, {"k": "pre"}, True),
        ({"StringLike": {"k": "pre."}}, {"k": "prex"}, False),  # only * and ? are wildcards
        ({"StringNotLike": {"k": "pre*"}}, {"k": "prefix"}, False),
        ({"StringEqualsIgnoreCase": {"k": "ABC"}}, {"k": "abc"}, True),
        ({"ArnLike": {"k": "arn:aws:iam::*:role/x"}}, {"k": "arn:aws:iam::1:role/x"}, True),
        # every operator and key must hold (AND)
        ({"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"k": "a"}}, {**TLS, "k": "b"}, False),
        ({"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"k": "a"}}, {**TLS, "k": "a"}, True),
        ({"ForAnyValue:StringEquals": {"k": "a"}}, {"k": ["x", "a"]}, True),
        ({"ForAllValues:StringEquals": {"k": "a"}}, {"k": ["x", "a"]}, False),
        ({"ForAllValues:StringEquals": {"k": "a"}}, {}, True),
        ({"NumericLessThan": {"k": "3"}}, {"k": "1"}, False),  # not evaluated: does not hold
    ],
)
def test_conditions_hold_as_iam_evaluates_them(condition: Any, context: dict[str, Any], holds: bool) -> None:
    assert conditions_match(condition, context) is holds
