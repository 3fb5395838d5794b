"""migration.yaml validation: good input accepted, each bad input one clear sentence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from migrator.config import load_config, parse_config, state_dir_for
from migrator.errors import ConfigError

GOOD: dict[str, Any] = {
    "migration": "orders-move",
    "source": {
        "account_id": "222222222222",
        "region": "us-east-1",
        "table": "Orders",
        "role_arn": "arn:aws:iam::222222222222:role/Ops",
    },
    "target": {"account_id": "111111111111", "region": "eu-west-1", "profile": "target-admin"},
}


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return data


def test_good_config_derives_names() -> None:
    c = parse_config(GOOD)
    assert c.target_table_name == "Orders"
    assert c.bucket_name == "orders-move-export-111111111111"
    assert c.replicator_role_arn == "arn:aws:iam::222222222222:role/orders-move-replicator"
    assert c.writer_role_arn == "arn:aws:iam::111111111111:role/orders-move-writer"
    assert c.writer_external_id == parse_config(copy.deepcopy(GOOD)).writer_external_id
    assert len(c.failure_bucket_name) <= 63


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("source.account_id", "12345", "'source.account_id' must be 12 digits"),
        ("source.account_id", 222222222222, "must be a quoted string of 12 digits"),
        ("target.region", "moon-1", "'target.region' does not look like an AWS region"),
        ("source.role_arn", "arn:aws:iam::333333333333:role/Ops", "belongs to account 333333333333"),
        ("source.role_arn", "not-an-arn", "is not an IAM role ARN"),
        ("migration", "Orders_Move", "'migration' must be 1-40 characters"),
        ("migration", "-orders", "'migration' must be 1-40 characters"),
        ("source.table", KeyError, "source.table is required"),
        ("target.region", KeyError, "'target.region' is missing"),
        ("surprise", True, "unknown key 'surprise'"),
        ("source.tabel", "Orders", "unknown key 'source.tabel'"),
        ("endpoint_url", "localhost:5000", "'endpoint_url' must be an http(s) URL"),
        ("bucket", "Bad_Bucket", "'bucket' is not a valid S3 bucket name"),
        ("target.account_id", "222222222222", None),  # different region: allowed
    ],
)
def test_bad_config_is_one_sentence(path: str, value: Any, expected: str | None) -> None:
    data = mutate(path, value)
    if expected is None:
        parse_config(data)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_same_table_same_account_same_region_is_refused() -> None:
    data = mutate("target.account_id", "222222222222")
    data["target"]["region"] = "us-east-1"
    with pytest.raises(ConfigError, match="source and target are the same table"):
        parse_config(data)


def test_role_and_profile_together_are_refused() -> None:
    data = mutate("source.profile", "ops")
    with pytest.raises(ConfigError, match="either role_arn or profile"):
        parse_config(data)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "migration.yaml"
    path.write_text("migration: x\nsource: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration at"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "migration.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(path)


def test_state_dir_sits_beside_the_config(tmp_path: Path) -> None:
    c = parse_config(GOOD)
    assert state_dir_for(c, tmp_path / "migration.yaml") == tmp_path.resolve() / ".migrator" / "orders-move"
