"""Render the ``.tfvars.json`` files from the Jinja templates (StrictUndefined, values via ``|tojson``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from ..errors import MigratorError
from ..files import atomic_write_text
from ..resources import templates_dir


def _tojson(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def environment(directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - JSON output, not HTML; every value goes through |tojson
    )
    env.filters["tojson"] = _tojson
    return env


def render(template: str, context: dict[str, Any], directory: Path | None = None) -> dict[str, Any]:
    """Render ``template`` and return the parsed JSON (so a broken template can never reach Terraform)."""
    try:
        text = environment(directory).get_template(template).render(**context)
    except jinja2.UndefinedError as err:
        raise MigratorError(f"template {template} needs a value that is missing: {err.message}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MigratorError(f"template {template} rendered invalid JSON ({err.msg} at line {err.lineno})") from None
    assert isinstance(data, dict)
    return data


def write_tfvars(path: Path, data: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
