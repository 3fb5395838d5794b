"""The Lambda zip: the replicator package alone, importing nothing of migrator outside it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from migrator.infra.package import build_zip_bytes

# Run in a separate interpreter, as Lambda would: the zip first on the path, and any import of
# `migrator` refused, so a module the zip lacks (or an import reaching into migrator) fails loudly.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])

class RefuseMigrator:
    def find_spec(self, name, path=None, target=None):
        if name == "migrator" or name.startswith("migrator."):
            raise ImportError("the Lambda zip imported " + name)
        return None

sys.meta_path.insert(0, RefuseMigrator())
import replicator.handler
mods = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] == "replicator"}
print(json.dumps({"modules": mods, "migrator": [n for n in sys.modules if n.split(".")[0] == "migrator"]}))
"""


def test_the_zip_holds_exactly_the_modules_the_handler_imports_and_nothing_of_migrator(tmp_path: Path) -> None:
    data = build_zip_bytes()
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(tmp_path)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["migrator"] == []
    imported = sorted(Path(f).relative_to(tmp_path).as_posix() for f in found["modules"].values())
    assert imported == names  # every file of the zip is imported, and everything imported is in the zip
