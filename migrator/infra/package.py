"""Build the replicator's Lambda zip deterministically from ``migrator/replicator``."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

REPLICATOR_DIR = Path(__file__).resolve().parent.parent / "replicator"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_zip_bytes(source: Path = REPLICATOR_DIR) -> bytes:
    """The zip holds the replicator package alone, as top-level ``replicator/``, byte-identical per input."""
    buf = io.BytesIO()
    files = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(f"replicator/{path.relative_to(source).as_posix()}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def build_zip(out: Path, source: Path = REPLICATOR_DIR) -> tuple[Path, str]:
    """Write the zip to ``out`` (only when its content changed) and return (path, base64 sha256)."""
    data = build_zip_bytes(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_bytes() != data:
        out.write_bytes(data)
    return out, base64.b64encode(hashlib.sha256(data).digest()).decode()
