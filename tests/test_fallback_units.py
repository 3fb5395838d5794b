"""Phases 5 (fallback) and 6 (cleanup) without Terraform: the reverse names, the direction record, cleanup's
refusals (pure, then through the runner against the emulator, refused before `terraform init`), and
`--abandon` on other phases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.aws.s3 import empty_bucket, object_versions
from migrator.aws.session import AccountSession
from migrator.cli import app
from migrator.config import parse_config
from migrator.errors import MigratorError
from migrator.infra.render import render
from migrator.phases import CLEANUP, FALLBACK, PHASES, ApplyOptions, check_options
from migrator.phases.cleanup import cutover_problem, failures_problem
from migrator.phases.direction import direction_of, last_action, mapping_enabled
from migrator.phases.fallback import target_stream_problem
from migrator.phases.runner import PhaseRunner, common_variables, recorded_outputs

from .conftest import make_table
from .support import migration, write_config
from .test_config import GOOD

LONGEST = "m" * 20 + "-" + "n" * 19  # 40 characters, the longest migration name


# Names ---------------------------------------------------------------------------------------------------
def test_reverse_names_fit_the_iam_lambda_and_s3_limits_for_the_longest_migration_name() -> None:
    c = parse_config({**GOOD, "migration": LONGEST})
    assert len(c.migration) == 40
    assert c.reverse_replicator_name == f"{LONGEST}-reverse-replicator"
    assert len(c.reverse_replicator_name) <= 64  # Lambda function and IAM role names
    assert len(f"{c.reverse_replicator_name}-iterator-age") <= 255  # alarm names
    assert len(c.reverse_writer_role_name) <= 64
    assert 3 <= len(c.reverse_failure_bucket_name) <= 63
    assert c.reverse_failure_bucket_name.endswith(c.target.account_id)  # the bucket lives in the target account
    assert c.reverse_failure_bucket_name != c.failure_bucket_name


def test_reverse_roles_live_in_the_other_accounts_and_the_external_ids_differ() -> None:
    c = parse_config(GOOD)
    assert c.reverse_replicator_role_arn == "arn:aws:iam::111111111111:role/orders-move-reverse-replicator"
    assert c.reverse_writer_role_arn == "arn:aws:iam::222222222222:role/orders-move-reverse-writer"
    assert c.reverse_external_id != c.writer_external_id
    assert c.reverse_external_id.startswith("migrator-orders-move-rev-")
    chosen = parse_config({**GOOD, "external_id": "ext-1234"})
    assert (chosen.writer_external_id, chosen.reverse_external_id) == ("ext-1234", "ext-1234-reverse")


def test_reverse_arns_follow_the_partition() -> None:
    c = parse_config(
        {
            **GOOD,
            "source": {"account_id": "222222222222", "region": "cn-north-1", "table": "Orders"},
            "target": {"account_id": "111111111111", "region": "cn-northwest-1"},
        }
    )
    assert c.reverse_writer_role_arn.startswith("arn:aws-cn:iam::222222222222:role/")
    assert c.reverse_replicator_role_arn.startswith("arn:aws-cn:iam::111111111111:role/")


# The direction ---------------------------------------------------------------------------------------------
CUTOVER = {"action": "cutover", "at": "2026-01-01T00:00:00Z", "by": "ops@host"}
ROLLBACK = {"action": "rollback", "at": "2026-01-01T01:00:00Z", "by": "ops@host"}


@pytest.mark.parametrize(
    ("section", "forward", "reverse"),
    [
        ({}, True, False),  # never cut over
        ({"direction": "reverse", "history": [CUTOVER]}, False, True),
        ({"direction": "forward", "history": [CUTOVER, ROLLBACK]}, True, False),
        ({"direction": "reverse", "history": [CUTOVER, ROLLBACK, CUTOVER]}, False, True),
    ],
)
def test_exactly_one_mapping_follows_the_recorded_direction(
    section: dict[str, Any], forward: bool, reverse: bool
) -> None:
    assert (mapping_enabled(section, "forward"), mapping_enabled(section, "reverse")) == (forward, reverse)
    assert not (mapping_enabled(section, "forward") and mapping_enabled(section, "reverse"))  # invariant 9


def test_an_unknown_direction_is_refused_not_taken_for_forward() -> None:
    with pytest.raises(MigratorError, match="neither forward nor reverse"):
        direction_of({"direction": "sideways"})
    assert last_action({}) is None
    assert last_action({"history": [CUTOVER, ROLLBACK]}) == "rollback"


# Cleanup's refusals (pure) ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "abandon", "refusal"),
    [
        ({}, False, "this migration was never cut over"),
        ({}, True, "this migration was never cut over"),
        ({"direction": "reverse", "history": [CUTOVER]}, False, None),
        ({"direction": "reverse", "history": [CUTOVER]}, True, "--abandon keeps the source as the live table"),
        ({"direction": "forward", "history": [CUTOVER, ROLLBACK]}, False, "the source table is live again"),
        ({"direction": "forward", "history": [CUTOVER, ROLLBACK]}, True, None),
        ({"direction": "forward", "history": [CUTOVER]}, True, "only a rollback leaves"),
    ],
)
def test_cleanup_runs_only_after_a_final_cutover_or_abandoned_after_a_rollback(
    section: dict[str, Any], abandon: bool, refusal: str | None
) -> None:
    problem = cutover_problem(section, abandon=abandon)
    if refusal is None:
        assert problem is None
    else:
        assert problem is not None and refusal in problem and "\n" not in problem


def test_cleanup_is_refused_while_failure_records_wait_naming_the_bucket_and_redrive() -> None:
    assert failures_problem({"a-failures": 0, "b-revfail": 0}) is None
    problem = failures_problem({"a-failures": 0, "b-revfail": 2})
    assert problem is not None
    assert "2 failure record(s) wait in s3://b-revfail" in problem and "`migrator redrive`" in problem


def test_phase_5_refuses_a_target_table_without_full_images_in_one_sentence() -> None:
    full = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}, "LatestStreamArn": "s"}
    keys = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, "LatestStreamArn": "s"}
    assert target_stream_problem(full) is None
    assert "has no stream" in (target_stream_problem({}) or "")
    assert "view KEYS_ONLY" in (target_stream_problem(keys) or "")
    assert "run phase 3 (import) first" in (target_stream_problem(None) or "")


# --abandon ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", [p.number for p in PHASES if p is not CLEANUP])
def test_abandon_is_refused_on_every_phase_but_cleanup(number: int, tmp_path: Path) -> None:
    with pytest.raises(MigratorError, match="--abandon belongs to phase 6"):
        check_options(next(p for p in PHASES if p.number == number), ApplyOptions(abandon=True))
    result = CliRunner().invoke(
        app, ["apply", "--phase", str(number), "--abandon", "--config", str(tmp_path / "none.yaml")]
    )
    assert result.exit_code != 0
    assert "--abandon belongs to phase 6 (cleanup)" in result.stderr  # before the config is even read
    check_options(CLEANUP, ApplyOptions(abandon=True))


# Terraform shares and templates ---------------------------------------------------------------------------------
def test_cleanup_sets_the_machinery_to_nothing_and_keeps_the_table(tmp_path: Path, moto_endpoint: str) -> None:
    m = migration(write_config(tmp_path, moto_endpoint, "fb-shares", "FbShares"))
    target: dict[str, Any] = {**common_variables(m), "table": {"name": "T"}}
    CLEANUP.variables(m, "target", target)
    assert (target["export_bucket"], target["writer_role"], target["reverse_replicator"]) == (None, None, None)
    assert target["table"] == {"name": "T"}
    source: dict[str, Any] = {**common_variables(m), "replicator": {"enabled": True}}
    CLEANUP.variables(m, "source", source)
    assert (source["replicator"], source["reverse_writer_role"]) == (None, None)


def test_templates_render_the_way_back_as_null_until_phase_5() -> None:
    c = parse_config(GOOD)
    base = {
        "migration": c.migration,
        "source": {"account_id": "222222222222", "region": "us-east-1"},
        "target": {"account_id": "111111111111", "region": "us-east-1"},
        "endpoint_url": None,
        "target_table_name": "Orders",
    }
    target = render("target.tfvars.json.j2", {**base, "export_bucket": None, "writer_role": None})
    source = render("source.tfvars.json.j2", {**base, "source_table": {}, "replicator": None})
    assert target["reverse_replicator"] is None and source["reverse_writer_role"] is None


def test_fallback_needs_the_target_tables_stream_recorded(tmp_path: Path, moto_endpoint: str) -> None:
    m = migration(write_config(tmp_path, moto_endpoint, "fb-early", "FbEarly"))
    with pytest.raises(MigratorError, match="the target table's stream is not recorded yet"):
        FALLBACK.variables(m, "target", common_variables(m))


# Through the runner against the emulator: refused before Terraform ------------------------------------------
def ready_for_cleanup(tmp_path: Path, moto_endpoint: str, name: str, table: str) -> Any:
    m = migration(write_config(tmp_path, moto_endpoint, name, table))
    for p in PHASES:
        if p is not CLEANUP:
            m.state.mark_phase(p.number, "done")
    return m


def test_cleanup_before_a_cutover_is_refused_and_changes_nothing(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = ready_for_cleanup(tmp_path, moto_endpoint, f"fbu-{unique}", f"FbU{unique}")
    before = m.state.data
    with pytest.raises(MigratorError, match="never cut over"):
        PhaseRunner(m).apply(CLEANUP.number)
    assert m.state.phase_status(CLEANUP.number) == "not started"
    assert m.state.data == before


def test_cleanup_while_a_failure_record_waits_is_refused_naming_the_bucket(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str
) -> None:
    m = ready_for_cleanup(tmp_path, moto_endpoint, f"fbw-{unique}", f"FbW{unique}")
    m.state.replace("cutover", {"direction": "reverse", "history": [CUTOVER]})
    bucket = m.config.failure_bucket_name
    s3 = source.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="aws/lambda/uuid/shard/2026/01/01/rec", Body=b"{}")
    with pytest.raises(MigratorError, match=f"1 failure record\\(s\\) wait in s3://{bucket}"):
        PhaseRunner(m).apply(CLEANUP.number)
    assert m.state.phase_status(CLEANUP.number) == "not started"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_emptying_a_versioned_bucket_removes_every_version_and_marker_but_stops_at_a_waiting_record(
    source: AccountSession, unique: str
) -> None:
    s3 = source.client("s3")
    bucket = f"fb-empty-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="aws/lambda/rec", Body=b"1")
    s3.put_object(Bucket=bucket, Key="redriven/aws/lambda/rec", Body=b"1")
    not_redriven = lambda key: not key.startswith("redriven/")  # noqa: E731
    with pytest.raises(ValueError, match="aws/lambda/rec"):
        empty_bucket(s3, bucket, refuse=not_redriven)
    assert len(object_versions(s3, bucket)) == 2  # nothing deleted
    s3.delete_object(Bucket=bucket, Key="aws/lambda/rec")  # what redrive does after the copy: a delete marker
    assert empty_bucket(s3, bucket, refuse=not_redriven) == 3
    assert object_versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)  # empty, so S3 lets it go
    assert empty_bucket(s3, bucket) == 0  # a missing bucket is empty


def test_phase_5_refuses_a_target_table_without_a_stream_before_terraform(
    tmp_path: Path, moto_endpoint: str, target: AccountSession, unique: str
) -> None:
    table = f"FbNs{unique}"
    m = migration(write_config(tmp_path, moto_endpoint, f"fbn-{unique}", table))
    make_table(target, table, stream=None, pitr=False)
    for p in PHASES[: PHASES.index(FALLBACK)]:
        m.state.mark_phase(p.number, "done")
    with pytest.raises(MigratorError, match="the target table has no stream"):
        PhaseRunner(m).apply(FALLBACK.number)
    assert m.state.phase_status(FALLBACK.number) == "not started"


def test_an_output_that_became_null_is_recorded_as_null_not_kept() -> None:
    previous = {"export_bucket_name": "b", "table_name": "T", "reverse_event_source_mapping_uuid": "u"}
    assert recorded_outputs(previous, {"table_name": "T"}) == {
        "export_bucket_name": None,
        "table_name": "T",
        "reverse_event_source_mapping_uuid": None,
    }
    assert recorded_outputs({}, {"a": 1}) == {"a": 1}
