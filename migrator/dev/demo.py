"""`make demo`: a whole migration on the embedded emulator, two accounts, under live writes."""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..aws.session import AccountSession
from ..infra.terraform import CallTime
from .emulator import start_emulator

SOURCE_ACCOUNT = "222222222222"
TARGET_ACCOUNT = "111111111111"
REGION = "us-east-1"
TABLE = "Orders"
CUSTOMERS = 97
CATCH_UP_TIMEOUT_S = 900.0
SOURCE_WRITE_PAUSE_S = 0.06  # between the live writer's calls on the source (a few thousand while phases 1–5 run)
TARGET_WRITES_S = 5.0  # how long the application writes to the target between the cutover and the rollback
HANDOVER_ADDRESS = "aws_dynamodb_table.orders"


def demo_config(endpoint: str) -> dict[str, Any]:
    return {
        "migration": "orders-demo",
        "source": {
            "account_id": SOURCE_ACCOUNT,
            "region": REGION,
            "table": TABLE,
            "role_arn": f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops",
        },
        "target": {
            "account_id": TARGET_ACCOUNT,
            "region": REGION,
            "role_arn": f"arn:aws:iam::{TARGET_ACCOUNT}:role/Ops",
        },
        "endpoint_url": endpoint,
    }


def create_source_table(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "created", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-customer",
                "KeySchema": [
                    {"AttributeName": "customer", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


#: Text that JSON carries escaped: non-ASCII, quotes, backslashes, newlines, tabs and control characters.
TRICKY = ("名前", "Zürich—Ελλάδα", 'say "hi"', "back\\slash", "line\nbreak", "tab\there", "bell\x07nul\x01", "emoji 🦆")


def order_key(n: int) -> dict[str, Any]:
    """The key of order ``n``; one in seven has a sort key of text JSON escapes (non-ASCII, quotes …)."""
    sk = f"order#{n:06d}" + (f" {TRICKY[n % len(TRICKY)]}" if n % 7 == 0 else "")
    return {"pk": {"S": f"customer#{n % CUSTOMERS:03d}"}, "sk": {"S": sk}}


def make_item(rng: random.Random, n: int, version: int = 0) -> dict[str, Any]:
    """A varied item: strings (escaped text too), 38-digit numbers, binary, sets, nested maps and lists,
    empty strings."""
    item: dict[str, Any] = {
        **order_key(n),
        "customer": {"S": f"customer#{n % CUSTOMERS:03d}"},
        "created": {"N": str(1_700_000_000 + n)},
        "version": {"N": str(version)},
        "total": {"N": str(Decimal(rng.randint(1, 10**6)) / 100)},
        "precise": {"N": "1234567890123456789012345678901234567" + str(rng.randint(0, 9))},
        "note": {"S": "" if n % 11 == 0 else f"note {rng.random():.6f}"},
        "label": {"S": f"{TRICKY[n % len(TRICKY)]} {TRICKY[(n // 3) % len(TRICKY)]}"},
    }
    kind = n % 5
    if kind == 0:
        item["payload"] = {"B": rng.randbytes(rng.randint(1, 64))}
    elif kind == 1:
        item["tags"] = {"SS": sorted({f"t{rng.randint(0, 20)}" for _ in range(rng.randint(1, 5))})}
    elif kind == 2:
        item["scores"] = {"NS": sorted({str(rng.randint(-1000, 1000)) for _ in range(rng.randint(1, 5))})}
    elif kind == 3:
        item["blobs"] = {"BS": [bytes([i, rng.randint(0, 255)]) for i in range(rng.randint(1, 3))]}
    else:
        item["lines"] = {
            "L": [
                {
                    "M": {
                        "sku": {"S": f"sku-{rng.randint(1, 500)}"},
                        "qty": {"N": str(rng.randint(1, 9))},
                        "gift": {"BOOL": rng.random() < 0.2},
                        "memo": {"NULL": True},
                    }
                }
                for _ in range(rng.randint(1, 4))
            ]
        }
    return item


def fill(ddb: Any, count: int, rng: random.Random, table: str = TABLE) -> None:
    requests = [{"PutRequest": {"Item": make_item(rng, n)}} for n in range(count)]
    for i in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: requests[i : i + 25]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


@dataclass
class LiveWriter:
    """Puts, updates and deletes on the source table from a background thread until stopped."""

    ddb: Any
    items: int
    table: str = TABLE
    seed: int = 7
    pause: float = 0.004
    counts: Counter[str] = field(default_factory=Counter)
    stop_event: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    touched: set[int] = field(default_factory=set)  # the orders it wrote (put, updated or deleted)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-writer", daemon=True)
        self._next = self.items

    @property
    def next_order(self) -> int:
        """One past the highest order number written so far."""
        return self._next

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Counter[str]:
        self.stop_event.set()
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.counts

    def _run(self) -> None:
        rng = random.Random(self.seed)
        try:
            while not self.stop_event.is_set():
                roll = rng.random()
                if roll < 0.3:
                    self.ddb.put_item(TableName=self.table, Item=make_item(rng, self._next, 1))
                    self.touched.add(self._next)
                    self._next += 1
                    self.counts["puts"] += 1
                else:
                    n = rng.randrange(self._next)
                    key = order_key(n)
                    self.touched.add(n)
                    if roll < 0.8:
                        self.ddb.update_item(
                            TableName=self.table,
                            Key=key,
                            UpdateExpression="SET version = if_not_exists(version, :z) + :one, note = :note, "
                            "customer = :c, created = :t",
                            ExpressionAttributeValues={
                                ":z": {"N": "0"},
                                ":one": {"N": "1"},
                                ":note": {"S": f"updated {rng.random():.5f} {TRICKY[n % len(TRICKY)]}"},
                                ":c": key["pk"],
                                ":t": {"N": str(1_700_000_000 + n)},
                            },
                        )
                        self.counts["updates"] += 1
                    else:
                        self.ddb.delete_item(TableName=self.table, Key=key)
                        self.counts["deletes"] += 1
                time.sleep(self.pause)
        except BaseException as err:  # surfaced by stop()
            self.error = err


def read_orders(ddb: Any, table: str, orders: set[int]) -> dict[int, dict[str, Any] | None]:
    """The items of ``orders`` in ``table`` (None where there is none), read consistently."""
    return {n: ddb.get_item(TableName=table, Key=order_key(n), ConsistentRead=True).get("Item") for n in sorted(orders)}


@dataclass(frozen=True)
class StepTime:
    """One step of the demo: its wall time and the Terraform commands it ran."""

    name: str
    seconds: float
    terraform: tuple[CallTime, ...] = ()

    @property
    def terraform_s(self) -> float:
        return sum(c.seconds for c in self.terraform)

    def to_json(self) -> dict[str, Any]:
        applies = [c for c in self.terraform if c.command == "apply"]
        return {
            "step": self.name,
            "seconds": round(self.seconds, 1),
            "terraform_runs": len(self.terraform),
            "terraform_s": round(self.terraform_s, 1),
            "applies": [
                {
                    "root": c.root,
                    "seconds": round(c.seconds, 1),
                    "slowest": [
                        {"address": r.address, "action": r.action, "seconds": r.seconds}
                        for r in sorted(c.resources, key=lambda r: -r.seconds)[:3]
                    ],
                }
                for c in applies
            ],
        }


@dataclass
class Stopwatch:
    """Times the demo's steps: a line when each starts, its time when it ends, a table at the end."""

    console: Console
    calls: list[CallTime] = field(default_factory=list)  # the phase runner's Terraform commands, once it exists
    steps: list[StepTime] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.console.print(Text.assemble(("▶ ", "bold cyan"), name), highlight=False)
        started, first = time.monotonic(), len(self.calls)
        try:
            yield
        finally:
            took = StepTime(name, time.monotonic() - started, tuple(self.calls[first:]))
            self.steps.append(took)
            runs = f" (Terraform: {len(took.terraform)} runs, {took.terraform_s:.1f} s)" if took.terraform else ""
            self.console.print(
                Text.assemble(("■ ", "bold cyan"), f"{name}: {took.seconds:.1f} s{runs}"), highlight=False
            )

    def slowest_resources(self, count: int = 8) -> list[dict[str, Any]]:
        found = sorted(
            ((s.name, c.root, r) for s in self.steps for c in s.terraform for r in c.resources),
            key=lambda found: -found[2].seconds,
        )
        return [
            {"step": step, "root": root, "address": r.address, "action": r.action, "seconds": r.seconds}
            for step, root, r in found[:count]
        ]

    def terraform_by_command(self) -> dict[str, dict[str, float]]:
        by: dict[str, dict[str, float]] = {}
        for s in self.steps:
            for c in s.terraform:
                entry = by.setdefault(c.command, {"runs": 0, "seconds": 0.0})
                entry["runs"] += 1
                entry["seconds"] = round(entry["seconds"] + c.seconds, 1)
        return by

    def table(self, total_s: float) -> Table:
        table = Table(title=f"where the demo's {total_s:.0f} s went")
        columns = (("step", "left"), ("seconds", "right"), ("share", "right"), ("Terraform (summed)", "right"))
        for name, justify in columns:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        table.add_column("slowest resource")
        for s in self.steps:
            slowest = max((r for c in s.terraform for r in c.resources), key=lambda r: r.seconds, default=None)
            table.add_row(
                s.name,
                f"{s.seconds:.1f}",
                f"{100 * s.seconds / total_s:.0f} %" if total_s else "",
                f"{len(s.terraform)} runs, {s.terraform_s:.1f} s" if s.terraform else "",
                f"{slowest.address} ({slowest.action}, {slowest.seconds:.0f} s)" if slowest and slowest.seconds else "",
            )
        return table


@dataclass(frozen=True)
class DemoResult:
    ok: bool
    verify: dict[str, Any]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "verify": self.verify, **self.summary}


def run_demo(items: int = 2500, workdir: Path | None = None, console: Console | None = None) -> DemoResult:
    """The whole life of a migration on the embedded emulator; each step says when it starts and how long it
    took, and the summary ends with a table of the steps (``DemoResult.summary`` holds the same numbers)."""
    from ..cli.progress import RichReporter
    from ..cli.status import render_status
    from ..context import MigrationContext
    from ..dataplane.direction import reverse
    from ..dataplane.switch import Action, drain, switch
    from ..dataplane.verify import ScanEngine
    from ..dataplane.verify.run import run_verify
    from ..phases import CLEANUP, EXPORT, PHASES, PREPARE, ApplyOptions
    from ..phases.handover import hand_over
    from ..phases.runner import PhaseRunner
    from ..readmodels.status import collect_status

    console = console or Console(stderr=True)
    # The emulator takes any credentials; the demo's own are fake, so no real account can be touched.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo-secret",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    workdir = workdir or Path(tempfile.mkdtemp(prefix="migrator-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    clock = Stopwatch(console)
    console.rule("migrator demo")
    with clock.step("start the emulator"):
        emulator = start_emulator()
    os.environ.update(emulator.client_environment())  # AWS_CA_BUNDLE: every client trusts the emulator's CA
    try:
        console.print(
            f"emulator (moto server) at {emulator.endpoint}; source account {SOURCE_ACCOUNT}, "
            f"target account {TARGET_ACCOUNT}; work dir {workdir}"
        )
        config_path = workdir / "migration.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(emulator.endpoint), sort_keys=False), encoding="utf-8")
        source = AccountSession(
            SOURCE_ACCOUNT, REGION, f"arn:aws:iam::{SOURCE_ACCOUNT}:role/Ops", endpoint_url=emulator.endpoint
        )
        ddb = source.client("dynamodb")
        with clock.step(f"source table: create and fill {items} items"):
            create_source_table(ddb)
            fill(ddb, items, random.Random(1))
        console.print(f"source table {TABLE}: {items} items (composite key, GSI by-customer), no stream, no PITR")

        writer = LiveWriter(ddb, items, pause=SOURCE_WRITE_PAUSE_S)
        writer.start()
        console.print("live writer started: puts, updates and deletes on the source until the cutover")
        migration = MigrationContext.load(config_path, RichReporter(console))
        migration.waits.export_poll_s = 0.5
        runner = PhaseRunner(migration)
        clock.calls = runner.calls
        # The source starts without stream and PITR: the first phase enables them, as an operator would ask.
        options = ApplyOptions(enable_stream=True, enable_pitr=True)
        for p in PHASES:
            if p.after_cutover:  # cleanup follows the cutover, below
                continue
            with clock.step(f"phase {p.number} ({p.name})"):
                runner.apply(p.number, options if p == PREPARE else ApplyOptions())
            if p == EXPORT:
                console.rule("migrator status (mid-migration)")
                console.print(render_status(collect_status(migration)))

        uuid = str(migration.state.section("source_outputs")["event_source_mapping_uuid"])
        console.rule("replication (the deployed Lambda, run by the emulator from its zip)")
        with clock.step("catch-up (the deployed function, the writer still writing for 3 s)"):
            time.sleep(3.0)  # the function replicates while the application still writes
            counts = writer.stop()
            console.print("live writer stopped (the application stops writing to the source before the cutover)")
            if not emulator.wait_for_lambda(CATCH_UP_TIMEOUT_S, [uuid]):
                console.print(f"[bold red]the function did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s[/]")
        stats = emulator.lambda_stats().get(uuid)
        if stats is not None:
            rate = f", {stats.records_per_s:,.0f} records/s" if stats.records_per_s else ""
            console.print(
                f"the function processed {stats.records:,} records in {stats.batches} batches{rate} "
                f"({stats.invocations} invocations, {stats.cold_starts} cold starts, {stats.errors} errors)",
                highlight=False,
            )

        switches: list[dict[str, Any]] = []

        def switch_to(action: Action) -> None:
            console.rule(f"migrator {action}")
            with clock.step(f"{action} (drain, redrive, verify, switch)"):
                result = switch(migration, action, poll_s=1.0)
            switches.append({"action": action, "at": result.at, "seconds": round(result.seconds, 1)})
            side = "target" if result.direction == "reverse" else "source"
            console.print(f"{action} done in {result.seconds:.1f} s: the application may now write to the {side}")

        switch_to("cutover")
        target_ddb = migration.target.client("dynamodb")
        on_target = LiveWriter(
            target_ddb, writer.next_order, table=migration.config.target_table_name, seed=11, pause=0.02
        )
        with clock.step(f"the application writes to the target for {TARGET_WRITES_S:.0f} s"):
            on_target.start()
            time.sleep(TARGET_WRITES_S)
            target_counts = on_target.stop()
            written = read_orders(target_ddb, migration.config.target_table_name, on_target.touched)
        console.print(
            f"the application wrote to the target for {TARGET_WRITES_S:.0f} s: "
            + ", ".join(f"{v} {k}" for k, v in sorted(target_counts.items())),
            highlight=False,
        )
        switch_to("rollback")
        # What the application wrote to the target, read from the source after the rollback. (The target is
        # not compared now: the forward replicator, enabled again, replays the reverse one's writes into it.)
        missing = sum(1 for n, want in read_orders(ddb, TABLE, on_target.touched).items() if want != written[n])
        if missing:
            console.print(f"[bold red]the source lacks {missing} of the writes made to the target[/]")
        else:
            console.print(
                f"the source holds every write made to the target since the cutover ({len(on_target.touched)} keys)"
            )
        switch_to("cutover")

        # Cleanup stops the reverse replicator where it stands; let it finish replaying what the target's stream
        # holds (its own backlog, read as the switch reads it), so the source left behind equals the target.
        with clock.step("the reverse replicator replays the target's stream to its end"):
            drain(migration, reverse(migration), timeout_s=CATCH_UP_TIMEOUT_S, poll_s=1.0)
        console.print("the reverse replicator has replayed the target's stream: the source equals the target")
        with clock.step(f"phase {CLEANUP.number} ({CLEANUP.name})"):
            runner.apply(CLEANUP.number)
        console.rule("migrator handover")
        with clock.step("handover"):
            handed = hand_over(migration, HANDOVER_ADDRESS, workdir / "handover", runner)
        console.print(f"handed over: {handed.path}", highlight=False)

        console.rule("verify")
        with clock.step("verify"):
            result = run_verify(migration, engine=ScanEngine(segments=4, workers=4, retry=migration.retry)).result
        c = migration.config
        listing = migration.state_s3().list_objects_v2(Bucket=c.state_bucket, Prefix=c.state.prefix + "/")
        console.print(f"state bucket s3://{c.state_bucket}/ (shared by the team; .migrator/ holds only caches):")
        for obj in listing.get("Contents", []):
            console.print(f"  {obj['Key']}  ({obj['Size']:,} bytes)", highlight=False, markup=False)
        recorded = migration.state.data.get("phases", {})
        total_s = time.monotonic() - started
        summary = {
            "phases": {number: record.get("status") for number, record in sorted(recorded.items())},
            "items_filled": items,
            "live_writes_source": sum(counts.values()),
            **{f"source_{k}": v for k, v in sorted(counts.items())},
            "live_writes_target": sum(target_counts.values()),
            **{f"target_{k}": v for k, v in sorted(target_counts.items())},
            "target_writes_missing_from_source_after_rollback": missing,
            "switches": switches,
            "lambda_batches": stats.batches if stats else 0,
            "lambda_records": stats.records if stats else 0,
            "lambda_records_per_s": round(stats.records_per_s or 0.0, 1) if stats else 0.0,
            "steps": [s.to_json() for s in clock.steps],
            "terraform": clock.terraform_by_command(),
            "slowest_resources": clock.slowest_resources(),
            "total_s": round(total_s, 1),
        }
        console.print("summary: " + json.dumps(summary), soft_wrap=True, highlight=False)
        console.print(clock.table(total_s))
        terraform = ", ".join(
            f"{cmd} {v['runs']:.0f} × = {v['seconds']:.0f} s" for cmd, v in clock.terraform_by_command().items()
        )
        console.print(f"Terraform, all steps: {terraform}", highlight=False)
        if result.clean:
            console.print("[bold green]the target table equals the source: zero missing, different, extraneous[/]")
        else:
            console.print("[bold red]the tables differ[/]")
        return DemoResult(ok=bool(result.clean) and not missing, verify=result.to_json(), summary=summary)
    finally:
        emulator.stop()
        os.environ.pop("AWS_CA_BUNDLE", None)  # the CA went with the emulator
