"""Where Terraform keeps each root's state: the backend, given to ``terraform init`` as partial config.

The roots declare ``backend "s3" {}``; :class:`S3Backend` completes it: the state bucket, the key
``<root>.tfstate`` under ``workspace_key_prefix = <prefix>``, so the migration's workspace keeps its state
at ``<prefix>/<migration>/<root>.tfstate`` beside the migration document, ``encrypt = true`` and S3-native
locking (``use_lockfile``). The root's Terraform runs with the credentials of the root's account; when the
bucket is in the other account, the backend reaches it by assuming the bucket account's role (its own
``assume_role``), so no bucket policy trusts the other account. Against an emulator, the backend's
endpoints point at it. The configuration holds no secret (it is a file in the cache directory).

:class:`LocalBackend` (state files in the cache directory) serves a plan made before the state bucket
exists: it plans against an empty state, as the operator is told.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..aws.errors import error_code
from ..config import Account, MigrationConfig
from ..errors import MigratorError
from ..files import atomic_write_text


class Backend(Protocol):
    name: str

    def init_config(self, root: str) -> list[str]:
        """The ``-backend-config`` values of ``terraform init`` for ``root``."""

    def has_state(self, root: str, workspace: str) -> bool:
        """True when ``workspace`` of ``root`` has a state already (this migration ran there before)."""


def _hcl(value: Any) -> str:
    """A value as HCL (JSON strings, numbers and booleans are HCL; objects become ``{ k = v }``)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_hcl(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@dataclass(frozen=True)
class S3Backend:
    config: MigrationConfig
    cache_dir: Path
    s3: Any  # the S3 client of the state bucket's account (for has_state)
    name: str = "s3"

    def settings(self, root: Account) -> dict[str, Any]:
        c = self.config
        settings: dict[str, Any] = {
            "bucket": c.state_bucket,
            "key": f"{root}.tfstate",
            "workspace_key_prefix": c.state.prefix,
            "region": c.state_region,
            "encrypt": True,
            "use_lockfile": True,
        }
        if root != c.state.account:
            role = c.state_account.role_arn
            if role is None:
                raise MigratorError(
                    f"Terraform in the {root} account reaches the state bucket {c.state_bucket} of the "
                    f"{c.state.account} account by assuming {c.state.account}.role_arn, which is not set; set it "
                    f"(a role the {root} account's role may assume), or put the bucket in the {root} account"
                )
            settings["assume_role"] = {"role_arn": role, "session_name": f"migrator-{c.migration}-state"[:64]}
        if c.endpoint_url:
            settings["endpoints"] = {"s3": c.endpoint_url, "sts": c.endpoint_url}
            settings["use_path_style"] = True
            settings["skip_metadata_api_check"] = True
        return settings

    def init_config(self, root: str) -> list[str]:
        assert root in ("source", "target")
        path = self.cache_dir / "terraform" / root / "backend.tfbackend"
        text = "".join(f"{k} = {_hcl(v)}\n" for k, v in self.settings(root).items())  # type: ignore[arg-type]
        atomic_write_text(path, text)
        return [str(path)]

    def has_state(self, root: str, workspace: str) -> bool:
        key = f"{self.config.state.prefix}/{workspace}/{root}.tfstate"
        try:
            self.s3.head_object(Bucket=self.config.state_bucket, Key=key)
        except ClientError as err:
            if error_code(err) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise
        return True


@dataclass(frozen=True)
class LocalBackend:
    """State files under ``<cache dir>/terraform/<root>/local-state/`` (a plan before the bucket exists)."""

    cache_dir: Path
    name: str = "local"

    def workspace_dir(self, root: str) -> Path:
        return self.cache_dir / "terraform" / root / "local-state"

    def init_config(self, root: str) -> list[str]:
        directory = self.workspace_dir(root)
        directory.mkdir(parents=True, exist_ok=True)
        return [f"workspace_dir={directory}"]

    def has_state(self, root: str, workspace: str) -> bool:
        return (self.workspace_dir(root) / workspace / "terraform.tfstate").exists()
