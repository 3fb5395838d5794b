"""Stands in for the bundled engine in ``make test-fast`` (on PYTHONPATH there): importable, never runnable.

Every run is recorded beside the checkout (tests/conftest.py then fails the session) and refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CALLS = Path(__file__).resolve().parents[3] / ".pytest-terraform-calls"


class TerraformCommand:
    @staticmethod
    def run(command: str, args: Any = None, **kwargs: Any) -> Any:
        with CALLS.open("a", encoding="utf-8") as fh:
            fh.write(f"bundled engine {command}\n")
        raise SystemExit("the bundled Terraform engine was called in make test-fast")
