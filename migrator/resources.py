"""Where the Terraform roots, the modules and the templates are, in a checkout or an installed wheel.

The wheel carries the repository's ``terraform/``, ``modules/`` and ``templates/`` as package data under
``migrator/_bundle/`` (see ``pyproject.toml``), with the same relative layout, so a root's
``source = "../../modules/..."`` resolves in both. A source checkout (an editable install) has no
``_bundle`` and uses the folders beside the package.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from .errors import MigratorError

BUNDLE = "_bundle"
_PARTS = ("terraform", "modules", "templates")


@functools.cache
def bundle_root() -> Path:
    """The directory holding ``terraform/``, ``modules/`` and ``templates/``."""
    packaged = Path(str(files("migrator"))) / BUNDLE
    checkout = Path(__file__).resolve().parent.parent
    for candidate in (packaged, checkout):
        if all((candidate / part).is_dir() for part in _PARTS):
            return candidate
    raise MigratorError(
        f"this installation of migrator lacks its Terraform roots and templates (looked in {packaged}); "
        "reinstall it from a wheel or a checkout (`pip install .`)"
    )


def terraform_root(name: str) -> Path:
    """The Terraform root configuration ``terraform/<name>``."""
    return bundle_root() / "terraform" / name


def templates_dir() -> Path:
    return bundle_root() / "templates"
