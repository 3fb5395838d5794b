"""Where Terraform keeps each root's state: the backend, given to ``terraform init`` as partial config.

The roots declare an empty ``backend "local" {}``; :class:`LocalBackend` points it at the migration's
state directory, one workspace per migration. A remote backend (S3 with locking) is one more class
here with the same three methods, and a matching ``backend`` block in the roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalBackend:
    """State files under ``<state dir>/terraform/<root>/state/<workspace>/terraform.tfstate``."""

    state_dir: Path

    def workspace_dir(self, root: str) -> Path:
        return self.state_dir / "terraform" / root / "state"

    def init_config(self, root: str) -> list[str]:
        """The ``-backend-config`` pairs of ``terraform init`` for ``root`` (its directory is created)."""
        directory = self.workspace_dir(root)
        directory.mkdir(parents=True, exist_ok=True)
        return [f"workspace_dir={directory}"]

    def has_state(self, root: str, workspace: str) -> bool:
        """True when ``workspace`` of ``root`` has a state already (this migration ran there before)."""
        return (self.workspace_dir(root) / workspace / "terraform.tfstate").exists()
