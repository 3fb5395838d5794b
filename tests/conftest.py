"""Shared fixtures: fake credentials, one moto server for the session, two accounts, stream events."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from migrator.aws.codec import key_of
from migrator.aws.session import AccountSession
from migrator.config import parse_config
from migrator.dev.emulator import Emulator, start_emulator
from migrator.infra.state_bucket import ensure_state_bucket

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ACCOUNT = "222222222222"
TARGET_ACCOUNT = "111111111111"
REGION = "us-east-1"
FAKE_KEY_ID = "AKIAFAKEMIGRATORTEST"
FAKE_SECRET = "fake-secret-migrator-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    # Clear every AWS variable an operator's shell may carry, then set fake ones, before any test
    # (or boto3 session) starts: no test can ever reach a real account.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    # Terraform takes the provider from the local mirror (tf.rc), never from the network, on a machine
    # that has one; elsewhere (GitHub Actions) from the registry, as the Makefile does.
    if (Path("/opt/tf-plugins") / "registry.terraform.io").is_dir():
        os.environ["TF_CLI_CONFIG_FILE"] = str(ROOT / "tf.rc")
    os.environ["TF_IN_AUTOMATION"] = "1"
    # pytest-xdist's workers start with COLUMNS=80 and LINES=24; a rich console built at import would keep that
    # size for good and ignore the width a test gives its command. As in a serial run, no size is set.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def _weight(item: pytest.Item) -> int:
    """0 for a test of a module that builds a whole migration, 1 for an end-to-end test, 2 for one that runs
    Terraform, 3 for the rest."""
    for weight, marker in enumerate(("whole_migration", "e2e", "terraform")):
        if item.get_closest_marker(marker):
            return weight
    return 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules that build a whole migration first, then those with an end-to-end test, then those that run
    Terraform, then the rest; within a module the order is kept. `make test` hands whole modules to its workers
    (pytest-xdist, ``--dist loadfile --no-loadscope-reorder``) in this order, one at a time to each worker and
    then a second, so the long modules start at once on workers of their own and the short ones fill the gaps."""
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        rank[module] = min(rank.get(module, 3), _weight(item))
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])


FORBIDDEN_TERRAFORM = ROOT / "tests" / "forbidden" / "terraform"
TERRAFORM_CALLS = ROOT / ".pytest-terraform-calls"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`make test-fast` runs Terraform and the bundled engine as stand-ins that record every call: any call
    fails the run, even from a test that expected Terraform to fail."""
    if os.environ.get("MIGRATOR_TERRAFORM") == str(FORBIDDEN_TERRAFORM) and TERRAFORM_CALLS.is_file():
        print(f"\nmake test-fast ran Terraform, which it must not:\n{TERRAFORM_CALLS.read_text()}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One embedded emulator for the whole session: moto server, with enabled event source mappings run
    as Lambda runs them (migrator/dev/emulator.py names each adjustment of moto). It serves HTTPS; every
    client of the session (boto3 here, Terraform, the replicator's zip in a child) trusts its CA through
    AWS_CA_BUNDLE, set for the session."""
    running = start_emulator()
    os.environ.update(running.client_environment())
    try:
        # The state bucket every test migration shares (each has its own keys): what phase 1 would create.
        target = _account(TARGET_ACCOUNT, running.endpoint)
        ensure_state_bucket(target.client("s3"), parse_config(STATE_BUCKET_CONFIG))
        yield running
    finally:
        os.environ.pop("AWS_CA_BUNDLE", None)
        running.stop()


STATE_BUCKET_CONFIG: dict[str, Any] = {
    "migration": "any",
    "source": {"account_id": SOURCE_ACCOUNT, "region": REGION, "table": "Any"},
    "target": {"account_id": TARGET_ACCOUNT, "region": REGION},
}


@pytest.fixture(scope="session")
def moto_endpoint(emulator: Emulator) -> str:
    """The emulator's endpoint URL."""
    return emulator.endpoint


def _account(account_id: str, endpoint: str) -> AccountSession:
    return AccountSession(
        account_id=account_id,
        region=REGION,
        role_arn=f"arn:aws:iam::{account_id}:role/Ops",
        endpoint_url=endpoint,
    )


@pytest.fixture
def source(moto_endpoint: str) -> AccountSession:
    """A session in the source account (222222222222), by assumed role on the emulator."""
    return _account(SOURCE_ACCOUNT, moto_endpoint)


@pytest.fixture
def target(moto_endpoint: str) -> AccountSession:
    """A session in the target account (111111111111), by assumed role on the emulator."""
    return _account(TARGET_ACCOUNT, moto_endpoint)


@pytest.fixture
def unique() -> str:
    """A short unique suffix, so tests sharing the session's emulator never collide."""
    return uuid.uuid4().hex[:8]


def make_table(
    session: AccountSession,
    name: str,
    *,
    range_key: bool = True,
    stream: str | None = "NEW_AND_OLD_IMAGES",
    pitr: bool = True,
) -> dict[str, Any]:
    """Create a pk/sk table (optionally with a stream and PITR) and return its description."""
    ddb = session.client("dynamodb")
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "S"})
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": keys,
        "AttributeDefinitions": attrs,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    ddb.create_table(**kwargs)
    if pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return dict(ddb.describe_table(TableName=name)["Table"])


def stream_record(
    event: str,
    keys: dict[str, Any],
    seq: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    *,
    ttl: bool = False,
) -> dict[str, Any]:
    """A DynamoDB stream record in the shape the Lambda event and GetRecords both use."""
    body: dict[str, Any] = {
        "Keys": keys,
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 64,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_700_000_000.0,
    }
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    record: dict[str, Any] = {
        "eventID": uuid.uuid4().hex,
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": body,
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{SOURCE_ACCOUNT}:table/T/stream/2026-01-01T00:00:00.000",
    }
    if ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


@pytest.fixture
def insert_event() -> dict[str, Any]:
    item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}}
    return stream_record("INSERT", {"pk": {"S": "a"}, "sk": {"S": "1"}}, 1, new=item)


@pytest.fixture
def modify_event() -> dict[str, Any]:
    old = {"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}}
    new = {"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "2"}}
    return stream_record("MODIFY", {"pk": {"S": "a"}, "sk": {"S": "1"}}, 2, new=new, old=old)


@pytest.fixture
def remove_event() -> dict[str, Any]:
    old = {"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "2"}}
    return stream_record("REMOVE", {"pk": {"S": "a"}, "sk": {"S": "1"}}, 3, old=old)


def key_id(keys: Mapping[str, Any]) -> bytes:
    """The canonical key (:mod:`migrator.aws.codec`) of a key or item holding only key attributes."""
    return key_of(keys, sorted(keys))


def scan_all(client: Any, table: str) -> dict[bytes, dict[str, Any]]:
    """Every item of a pk/sk table, by canonical key, read consistently page by page."""
    items: dict[bytes, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            items[key_id({"pk": item["pk"], "sk": item["sk"]})] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
