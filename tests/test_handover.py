"""`migrator handover`: the target table written out as the application's Terraform (rendering, table-style),
bad inputs refused with one sentence and nothing changed, and, with the real Terraform against the emulator,
a whole handover: the written file imports into a fresh root with nothing to add, change or destroy, and
destroying migrator's target workspace afterwards leaves the table and its items."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from migrator.cli import app
from migrator.cli.status import render_status
from migrator.errors import MigratorError
from migrator.files import create_text
from migrator.infra.handover import TableFacts, hcl_string, render, resource_name
from migrator.phases import IMPORT, PHASES
from migrator.phases.runner import root_variables
from migrator.readmodels.status import collect_status, handover_view

from .conftest import REGION, TARGET_ACCOUNT
from .support import migration, write_config

# Rendering (pure) ---------------------------------------------------------------------------------------------
BASE: dict[str, Any] = {
    "TableName": "Orders",
    "TableArn": f"arn:aws:dynamodb:{REGION}:{TARGET_ACCOUNT}:table/Orders",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
    "DeletionProtectionEnabled": True,
}
PITR_ON = {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"}}
KMS = f"arn:aws:kms:{REGION}:{TARGET_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _provisioned(t: dict[str, Any]) -> None:
    t["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
    t["ProvisionedThroughput"] = {"ReadCapacityUnits": 7, "WriteCapacityUnits": 3}


def _gsis(t: dict[str, Any]) -> None:
    t["AttributeDefinitions"].append({"AttributeName": "status", "AttributeType": "S"})
    t["GlobalSecondaryIndexes"] = [
        {
            "IndexName": "byStatus",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total", "customer"]},
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 1},
        },
        {
            "IndexName": "allByStatus",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
    ]


def _hash_only(t: dict[str, Any]) -> None:
    t["KeySchema"] = t["KeySchema"][:1]
    t["AttributeDefinitions"] = t["AttributeDefinitions"][:1]


def _no_protection(t: dict[str, Any]) -> None:
    t["DeletionProtectionEnabled"] = False


def _stream(t: dict[str, Any]) -> None:
    t["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _kms(t: dict[str, Any]) -> None:
    t["SSEDescription"] = {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": KMS}


def _infrequent(t: dict[str, Any]) -> None:
    t["TableClassSummary"] = {"TableClass": "STANDARD_INFREQUENT_ACCESS"}


Mutation = Callable[[dict[str, Any]], None]
RENDER_CASES: list[tuple[str, list[Mutation], dict[str, Any], dict[str, Any], list[str], list[str]]] = [
    (
        "on-demand, range key, defaults",
        [],
        {},
        PITR_ON,
        [
            'billing_mode = "PAY_PER_REQUEST"',
            'range_key    = "sk"',
            'table_class  = "STANDARD"',
            "deletion_protection_enabled = true",
            "point_in_time_recovery {\n    enabled = true\n  }",
            "tags = {}",
            "AWS owned key",
        ],
        ["read_capacity", "stream_enabled", "ttl {", "server_side_encryption {", "import_table", "timeouts"],
    ),
    (
        "provisioned with capacities and GSIs with projections",
        [_provisioned, _gsis],
        {},
        PITR_ON,
        [
            'billing_mode = "PROVISIONED"',
            "read_capacity  = 7\n  write_capacity = 3",
            'name               = "byStatus"',
            'non_key_attributes = ["total", "customer"]',
            "read_capacity      = 2\n    write_capacity     = 1",
            'name            = "allByStatus"\n    hash_key        = "status"\n    projection_type = "KEYS_ONLY"\n'
            "    read_capacity   = 0\n    write_capacity  = 0\n  }",
        ],
        [],
    ),
    (
        "on-demand GSI has no capacities",
        [_gsis],
        {},
        PITR_ON,
        ['projection_type    = "INCLUDE"'],
        ["read_capacity", "write_capacity"],
    ),
    (
        "hash key only, no protection, PITR off",
        [_hash_only, _no_protection],
        {},
        {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}},
        ["deletion_protection_enabled = false", "point_in_time_recovery {\n    enabled = false\n  }"],
        ["range_key", '"sk"'],
    ),
    (
        "TTL on, stream on, KMS key, infrequent access",
        [_stream, _kms, _infrequent],
        {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
        PITR_ON,
        [
            'stream_enabled   = true\n  stream_view_type = "NEW_AND_OLD_IMAGES"',
            'ttl {\n    enabled        = true\n    attribute_name = "expires_at"\n  }',
            f'server_side_encryption {{\n    enabled     = true\n    kms_key_arn = "{KMS}"\n  }}',
            'table_class  = "STANDARD_INFREQUENT_ACCESS"',
        ],
        ["AWS owned key"],
    ),
    (
        "TTL being disabled is no TTL",
        [],
        {"TimeToLiveStatus": "DISABLING", "AttributeName": "expires_at"},
        PITR_ON,
        [],
        ["ttl {", "expires_at"],
    ),
]


def facts(mutations: list[Mutation], ttl: dict[str, Any], backups: dict[str, Any], **tags: str) -> TableFacts:
    t = copy.deepcopy(BASE)
    for mutate in mutations:
        mutate(t)
    return TableFacts(table=t, ttl=ttl, backups=backups, tags=tags)


@pytest.mark.parametrize(
    ("mutations", "ttl", "backups", "present", "absent"),
    [c[1:] for c in RENDER_CASES],
    ids=[c[0] for c in RENDER_CASES],
)
def test_rendering_carries_the_tables_current_settings(
    mutations: list[Mutation], ttl: dict[str, Any], backups: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    text = render("aws_dynamodb_table.orders", facts(mutations, ttl, backups))
    assert text.startswith('import {\n  to = aws_dynamodb_table.orders\n  id = "Orders"\n}\n\n')
    assert 'resource "aws_dynamodb_table" "orders" {\n  name         = "Orders"\n' in text
    for fragment in present:
        assert fragment in text, (fragment, text)
    for fragment in absent:
        assert fragment not in text, (fragment, text)


TRICKY_TAGS = {
    "team": "orders",
    "quote": 'say "hi"',
    "interp": "${var.secret} and %{ if true }x%{ endif }",
    "already": "$${not} %%{either}",
    "backslash": "C:\\path\\",
    "lines": "one\ntwo\tthree\r",
    "unicode": "café ☕",
    "aws:cloudformation:stack": "s",
}


def test_tag_values_are_escaped_never_interpolated() -> None:
    text = render("aws_dynamodb_table.orders", facts([], {}, PITR_ON, **TRICKY_TAGS))
    assert '"quote"                    = "say \\"hi\\""' in text
    assert '"$${var.secret} and %%{ if true }x%%{ endif }"' in text
    assert '"$$${not} %%%{either}"' in text
    assert '"C:\\\\path\\\\"' in text and '"one\\ntwo\\tthree\\r"' in text
    assert hcl_string("\x01") == '"\\u0001"'


@pytest.mark.parametrize(
    "address",
    [
        "aws_s3_bucket.x",
        "aws_dynamodb_table.",
        "aws_dynamodb_table",
        "module.x.aws_dynamodb_table.y",
        "aws_dynamodb_table.orders[0]",
        'aws_dynamodb_table.orders["a"]',
        "aws_dynamodb_table.1orders",
        "aws_dynamodb_table.or ders",
        "data.aws_dynamodb_table.orders",
        " aws_dynamodb_table.orders",
    ],
)
def test_only_a_root_module_table_address_is_accepted(address: str) -> None:
    with pytest.raises(MigratorError, match=r"is not an address of the form aws_dynamodb_table\.<name>"):
        resource_name(address)


@pytest.mark.parametrize("address", ["aws_dynamodb_table.orders", "aws_dynamodb_table._x-1", "aws_dynamodb_table.T"])
def test_a_root_module_table_address_is_accepted(address: str) -> None:
    assert resource_name(address) == address.split(".", 1)[1]


def terraform(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=False)


@pytest.mark.terraform
@pytest.mark.parametrize(
    ("mutations", "ttl", "backups"), [c[1:4] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_rendering_is_terraform_fmt_clean(
    tmp_path: Path, mutations: list[Mutation], ttl: dict[str, Any], backups: dict[str, Any]
) -> None:
    text = render("aws_dynamodb_table.orders", facts(mutations, ttl, backups, **TRICKY_TAGS), header="From migrator.")
    checked = terraform("fmt", "-check", "-diff", "-", cwd=tmp_path, stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.terraform
def test_escaped_strings_read_back_as_written(tmp_path: Path) -> None:
    """Terraform itself parses every escaped tag value back to exactly the value: nothing interpolated."""
    outputs = "".join(
        f'output "{k.replace(":", "_")}" {{\n  value = {hcl_string(v)}\n}}\n' for k, v in TRICKY_TAGS.items()
    )
    (tmp_path / "main.tf").write_text(outputs, encoding="utf-8")
    for args in (("init", "-input=false", "-no-color"), ("apply", "-input=false", "-no-color", "-auto-approve")):
        done = terraform(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    read = json.loads(terraform("output", "-json", cwd=tmp_path).stdout)
    assert {k: read[k.replace(":", "_")]["value"] for k in TRICKY_TAGS} == TRICKY_TAGS


# Bad inputs: one sentence, non-zero exit, nothing changed (no Terraform) -------------------------------------
def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def one_sentence(result: Any, fragment: str) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    text = result.stderr.strip().splitlines()[-1]
    assert text.startswith("error: ") and fragment in text, result.stderr
    return text


@pytest.fixture
def fresh(tmp_path: Path, moto_endpoint: str, unique: str) -> Path:
    """A migration nothing has run for (its own name), its config in tmp_path."""
    return write_config(tmp_path, moto_endpoint, f"ho-bad-{unique}", f"HoBad{unique}")


@pytest.mark.parametrize("address", ["aws_s3_bucket.x", "aws_dynamodb_table.", "module.x.aws_dynamodb_table.y"])
def test_handover_to_a_wrong_address_is_refused_before_anything(fresh: Path, address: str) -> None:
    out = fresh.parent / "out"
    result = run("handover", "--address", address, "--out", str(out), "--config", str(fresh))
    one_sentence(result, "is not an address of the form aws_dynamodb_table.<name>")
    assert not out.exists()
    assert migration(fresh).state.data == {}


def test_handover_never_overwrites_a_file(fresh: Path) -> None:
    out = fresh.parent / "out"
    out.mkdir()
    existing = out / f"{migration(fresh).config.target_table_name}.tf"
    existing.write_text("# the application's own file\n", encoding="utf-8")
    result = run("handover", "--address", "aws_dynamodb_table.orders", "--out", str(out), "--config", str(fresh))
    one_sentence(result, "already exists and migrator never overwrites a file")
    assert existing.read_text(encoding="utf-8") == "# the application's own file\n"
    assert sorted(p.name for p in out.iterdir()) == [existing.name]
    assert migration(fresh).state.data == {}


def test_handover_before_every_phase_is_done_is_refused(fresh: Path) -> None:
    m = migration(fresh)
    for p in PHASES[:-1]:
        m.state.mark_phase(p.number, "done")
    out = fresh.parent / "out"
    before = m.state.data
    result = run("handover", "--address", "aws_dynamodb_table.orders", "--out", str(out), "--config", str(fresh))
    last = PHASES[-1]
    one_sentence(result, f"phase {last.number} ({last.name}) is not started")
    assert not out.exists()
    assert m.state.data == before and m.lock.holder() is None


def test_once_handed_over_the_target_root_has_no_table(fresh: Path) -> None:
    m = migration(fresh)
    with pytest.raises(MigratorError, match="phase 3 needs the export"):  # before: the table is derived
        root_variables(m, "target", IMPORT)
    m.state.update("handover", address="aws_dynamodb_table.orders", at="2026-01-01T00:00:00Z")
    assert root_variables(m, "target", IMPORT)["table"] is None  # count = 0: nothing planned for the table


def test_status_shows_the_handover(fresh: Path) -> None:
    assert handover_view({}) is None
    record = {"address": "aws_dynamodb_table.orders", "file": "/x/T.tf", "at": "2026-01-01T00:00:00Z", "by": "u@h"}
    assert handover_view({**record, "table": "T"}) == record
    m = migration(fresh)
    m.state.update("handover", **record)
    console = Console(width=200, record=True)
    console.print(render_status(collect_status(m)))
    assert "aws_dynamodb_table.orders → /x/T.tf" in console.export_text()


def test_create_text_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "T.tf"
    create_text(path, "first\n")
    with pytest.raises(FileExistsError):
        create_text(path, "second\n")
    assert path.read_text(encoding="utf-8") == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["T.tf"]  # no temp file left behind
