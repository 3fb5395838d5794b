"""An installed wheel (not an editable checkout) works from any directory: it carries its Terraform roots,
modules and templates as package data."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from .conftest import ROOT
from .support import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.terraform]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel built from this checkout; returns its ``bin`` directory.

    The wheel goes in with ``--no-deps``; its dependencies (boto3, typer …) are made importable by a
    path line to this environment's site-packages. A path line does not run that directory's own
    ``.pth`` files, so the editable install of the checkout stays out: ``migrator`` is the wheel's.
    """
    base = tmp_path_factory.mktemp("install")
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("migrator-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return env_dir / "bin"


def test_the_wheel_carries_the_roots_modules_and_templates(installed: Path) -> None:
    probe = (
        "import migrator, migrator.resources as r; "
        "print(migrator.__file__); print(r.terraform_root('target')); print(r.templates_dir())"
    )
    # From the environment's own directory: `python -c` puts the working directory first on sys.path.
    out = subprocess.run(
        [str(installed / "python"), "-c", probe], cwd=installed.parent, check=True, capture_output=True, text=True
    )
    package, root, templates = out.stdout.split()
    env = installed.parent
    assert Path(package).is_relative_to(env), "migrator must come from the wheel, not the checkout"
    assert Path(root).is_relative_to(env) and (Path(root) / "main.tf").is_file()
    assert (Path(root) / ".terraform.lock.hcl").is_file()
    assert (Path(templates) / "target.tfvars.json.j2").is_file()


def test_installed_migrator_plans_phase_1_from_an_empty_directory(
    installed: Path, tmp_path: Path, moto_endpoint: str
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    write_config(work, moto_endpoint, "wheel-plan", "WheelOrders")
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_TERRAFORM"}
    proc = subprocess.run(
        [str(installed / "migrator"), "plan", "--phase", "1", "--format", "json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"phase": 1' in proc.stdout and '"has_changes": true' in proc.stdout
    assert (work / ".migrator" / "wheel-plan" / "plans").is_dir()
    bundle = next(installed.parent.glob("lib/python*/site-packages/migrator/_bundle"))
    assert not list(bundle.rglob(".terraform")), "Terraform must not write into the installed package"
