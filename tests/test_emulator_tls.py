"""The emulator serves HTTPS (:mod:`migrator.dev.emulator`): a CA made at start, trusted through
``AWS_CA_BUNDLE``."""

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
from migrator.dev.emulator import Emulator, start_emulator

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
