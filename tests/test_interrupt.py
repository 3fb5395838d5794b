"""An interrupted run leaves nothing running: Terraform and its plugins are stopped with migrator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrator.aws.session import AccountSession

from .conftest import make_table
from .support import write_config

# A stand-in for terraform: answers `version`, and on `init` starts a long-lived "provider plugin" (its
# pid written beside the script: migrator gives Terraform only its own environment) and hangs, as a slow
# init or apply would.
FAKE_TERRAFORM = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    version) echo '{"terraform_version": "1.11.4"}'; exit 0 ;;
    init)
      sleep 300 &
      echo $! > "$(dirname "$0")/plugin.pid"
      sleep 300
      exit 0 ;;
  esac
done
exit 0
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # a generous wait for a condition, not a speed budget
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("sig", "code", "said"), [(signal.SIGTERM, 143, "stopped by SIGTERM"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_stopped_apply_stops_terraform_and_its_plugins_and_says_the_phase_is_safe_to_run_again(
    tmp_path: Path, moto_endpoint: str, source: AccountSession, unique: str, sig: signal.Signals, code: int, said: str
) -> None:
    table = f"Sig{unique}"
    make_table(source, table)
    config = write_config(tmp_path, moto_endpoint, f"sig-{unique}", table)
    terraform = tmp_path / "terraform"
    terraform.write_text(FAKE_TERRAFORM)
    terraform.chmod(0o755)
    pid_file = tmp_path / "plugin.pid"
    env = {**os.environ, "MIGRATOR_TERRAFORM": str(terraform)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator.cli", "apply", "--phase", "1", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip(), "the plugin to start")
        plugin = int(pid_file.read_text())
        assert _alive(plugin)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and said in last and "safe to run again" in last, err
    assert "Traceback" not in err
    _wait_for(lambda: not _alive(plugin), "the plugin to be gone")
