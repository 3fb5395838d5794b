"""The embedded AWS emulator (moto server) used by `migrator demo` and the tests.

Adjustments, each restoring an AWS behaviour moto lacks (docs/architecture.md, "The emulator"):

* **Stream records are kept.** moto "delivers" a DynamoDB stream's records to every Lambda event
  source mapping on the table (even a disabled one) by invoking the function in Docker, and then
  DISCARDS the records from the shard whatever the outcome. Without Docker the records are simply
  lost, which no real stream does. Here mappings are stored, not executed, so the stream keeps its
  records for `migrator replicate --local`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

_patched = False


def _store_not_execute() -> None:
    global _patched
    if _patched:
        return
    from moto.awslambda.models import LambdaBackend

    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> str:
        return ""  # falsy: the shard keeps its records

    LambdaBackend.send_dynamodb_items = send_dynamodb_items  # type: ignore[method-assign]
    _patched = True


@dataclass
class Emulator:
    server: Any
    endpoint: str

    def stop(self) -> None:
        self.server.stop()


def start_emulator(host: str = "127.0.0.1", port: int = 0) -> Emulator:
    """Start moto server on a free loopback port (port 0) in this process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        from ..errors import MigratorError

        raise MigratorError("the emulator needs moto[server]; run `make install`") from None
    _store_not_execute()
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return Emulator(server, f"http://{bound_host}:{bound_port}")
