"""Running the phases: identity check → render → init → workspace → plan → guard → apply → data step."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from . import ops
from .aws import AccountSession
from .config import AccountConfig, MigrationConfig, state_dir_for
from .errors import MigratorError
from .package import build_zip
from .phases import PHASES, Account, Phase, phase
from .render import render, write_tfvars
from .state import MigrationState, iso, now, parse_iso
from .terraform import (
    PlanResult,
    TerraformRunner,
    child_env,
    count_changes,
    destructive_table_changes,
    resource_changes,
)

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"
MAX_CONVERGE_APPLIES = 4


@dataclass(frozen=True)
class PlanReport:
    phase: Phase
    account_id: str
    workspace: str
    has_changes: bool
    counts: dict[str, int]
    changes: list[tuple[str, str]]  # (kind, address), no-ops left out
    table_replacements: list[str]
    text: str


@dataclass
class Migration:
    config: MigrationConfig
    config_path: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    export_timeout: float = 6 * 3600
    export_poll: float = 5.0
    _runners: dict[str, TerraformRunner] = field(default_factory=dict, init=False, repr=False)

    # Sessions, state and runners -------------------------------------------------------------------
    @functools.cached_property
    def state_dir(self) -> Path:
        return state_dir_for(self.config, self.config_path)

    @functools.cached_property
    def state(self) -> MigrationState:
        return MigrationState(self.state_dir)

    def _account_session(self, c: AccountConfig) -> AccountSession:
        return AccountSession(
            c.account_id,
            c.region,
            c.role_arn,
            c.profile,
            self.config.endpoint_url,
            session_name=f"migrator-{self.config.migration}"[:64],
        )

    @functools.cached_property
    def source(self) -> AccountSession:
        return self._account_session(self.config.source)

    @functools.cached_property
    def target(self) -> AccountSession:
        return self._account_session(self.config.target)

    def session(self, account: Account) -> AccountSession:
        return self.source if account == "source" else self.target

    def account_id(self, account: Account) -> str:
        return self.config.source.account_id if account == "source" else self.config.target.account_id

    def check_identity(self, account: Account) -> None:
        """Invariant 7: the credentials must belong to the configured account, before anything else."""
        expected = self.account_id(account)
        try:
            actual = self.session(account).caller_account()
        except ClientError as err:
            code = ops.error_code(err)
            if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
                raise MigratorError(
                    f"the credentials for the {account} account have expired; refresh them and run again"
                ) from None
            raise MigratorError(
                f"could not confirm the identity in the {account} account ({code}); check its credentials "
                f"and {account}.role_arn"
            ) from None
        if actual != expected:
            raise MigratorError(
                f"the {account} credentials belong to account {actual}, not the configured {account} account "
                f"{expected}; use credentials for {expected} (nothing was changed)"
            )

    def runner(self, p: Phase) -> TerraformRunner:
        creds = self.session(p.account).credentials().as_env()
        return TerraformRunner(
            root=TERRAFORM_DIR / p.root,
            data_dir=self.state_dir / "terraform" / p.root / "data",
            workspace_dir=self.state_dir / "terraform" / p.root / "state",
            env=child_env(creds, self.state_dir / "terraform" / p.root / "data"),
        )

    # Phase order and deadline -------------------------------------------------------------------
    def fingerprint(self) -> dict[str, str]:
        c = self.config
        return {
            "source": f"{c.source.account_id}/{c.source.region}/{c.source_table_name}",
            "target": f"{c.target.account_id}/{c.target.region}/{c.target_table_name}",
        }

    def check_same_migration(self) -> None:
        """A migration name names one source → target move; a second one under the same name is refused."""
        recorded = self.state.data.get("fingerprint")
        if recorded is None:
            return
        if recorded != self.fingerprint():
            raise MigratorError(
                f"the migration {self.config.migration!r} in {self.state_dir} moves {recorded['source']} to "
                f"{recorded['target']}, not {self.fingerprint()['source']} to {self.fingerprint()['target']}; "
                "give this migration another name"
            )

    def check_order(self, p: Phase) -> None:
        for earlier in PHASES:
            if earlier.number >= p.number:
                break
            if self.state.phase_status(earlier.number) != "done":
                raise MigratorError(
                    f"phase {p.number} ({p.name}) needs phase {earlier.number} ({earlier.name}) done first, "
                    f"and it is {self.state.phase_status(earlier.number)}; run `make phase-{earlier.number}`"
                )

    def retention_deadline(self) -> dt.datetime | None:
        started = self.state.section("export").get("start_time")
        if not started:
            return None
        return parse_iso(started) + dt.timedelta(hours=self.config.stream_retention_hours)

    def check_deadline(self) -> None:
        """Invariant 2: past export start + retention the stream has trimmed records we still need."""
        deadline = self.retention_deadline()
        if deadline is None:
            return
        left = deadline - now()
        if left <= dt.timedelta(0):
            raise MigratorError(
                f"the stream-retention deadline {iso(deadline)} has passed, so changes made early in the export "
                "are already trimmed from the stream; start the migration again from phase 2 with a new export"
            )
        hours, rest = divmod(int(left.total_seconds()), 3600)
        self.console.print(f"[bold]stream-retention deadline[/] {iso(deadline)} ({hours} h {rest // 60} min left)")

    # Template contexts ----------------------------------------------------------------------------
    def _common_context(self) -> dict[str, Any]:
        c = self.config
        return {
            "migration": c.migration,
            "source": {"account_id": c.source.account_id, "region": c.source.region},
            "target": {"account_id": c.target.account_id, "region": c.target.region},
            "endpoint_url": c.endpoint_url,
            "target_table_name": c.target_table_name,
        }

    def target_context(self, p: Phase) -> dict[str, Any]:
        c = self.config
        table = None
        if p.number >= 3 or self.state.phase_status(3) != "not started":
            table = self.state.section("import").get("table_spec")
            if table is None:
                raise MigratorError("the target table is not specified yet: phase 3 needs the export of phase 2")
        return {
            **self._common_context(),
            "export_bucket": {
                "name": c.bucket_name,
                "export_prefix": c.export_s3_prefix + "/",
                "expiration_days": c.export_expiration_days,
            },
            "writer_role": {
                "name": c.writer_role_name,
                "external_id": c.writer_external_id,
                "replicator_role_arn": c.replicator_role_arn,
            },
            "table": table,
        }

    def source_context(self, p: Phase) -> dict[str, Any]:
        c = self.config
        stream = self.state.section("stream")
        if not stream.get("arn"):
            raise MigratorError("the source stream is not recorded yet; run phase 1 first")
        package, sha = build_zip(self.state_dir / "build" / "replicator.zip")
        enabled = p.number >= 4 or self.state.phase_status(4) != "not started"
        replicator: dict[str, Any] = {
            "enabled": enabled,
            "package_path": str(package),
            "package_base64sha256": sha,
            "writer_role_arn": c.writer_role_arn,
            "external_id": c.writer_external_id,
            "target_table_name": c.target_table_name,
            "target_region": c.target.region,
            "failure_bucket_name": c.failure_bucket_name,
            **c.replicator.model_dump(),
        }
        replicator["alarm_actions"] = list(c.replicator.alarm_actions)
        if c.endpoint_url:
            replicator["target_endpoint_url"] = c.endpoint_url
        return {
            **self._common_context(),
            "source_table": {
                "name": c.source_table_name,
                "arn": stream["table_arn"],
                "stream_arn": stream["arn"],
            },
            "replicator": replicator,
        }

    def tfvars(self, p: Phase) -> Path:
        context = self.target_context(p) if p.root == "target" else self.source_context(p)
        data = render(p.template, context)
        return write_tfvars(self.state_dir / "tfvars" / f"phase-{p.number}.tfvars.json", data)

    # Terraform ------------------------------------------------------------------------------------
    @contextmanager
    def _step(self, text: str) -> Iterator[None]:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console, transient=True
        ) as bar:
            bar.add_task(text, total=None)
            yield
        self.console.print(f"[green]✓[/] {text}")

    def _plan(self, p: Phase, runner: TerraformRunner, var_file: Path) -> tuple[PlanResult, PlanReport]:
        plan_file = self.state_dir / "plans" / f"phase-{p.number}.tfplan"
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        with self._step(f"terraform plan ({p.root}, workspace {self.config.migration})"):
            result = runner.plan(var_file, plan_file)
            plan_json = runner.show(plan_file)
        changes = [(rc.kind, rc.address) for rc in resource_changes(plan_json) if rc.kind != "no-op"]
        report = PlanReport(
            phase=p,
            account_id=self.account_id(p.account),
            workspace=self.config.migration,
            has_changes=result.has_changes,
            counts=count_changes(plan_json),
            changes=changes,
            table_replacements=[rc.address for rc in destructive_table_changes(plan_json)],
            text=result.text,
        )
        return result, report

    def _ready_runner(self, p: Phase) -> TerraformRunner:
        """Terraform checked, initialised and in the migration's workspace: changes no account."""
        if p.root not in self._runners:
            runner = self.runner(p)
            with self._step(f"terraform init ({p.root})"):
                runner.check_version()
                runner.init()
                runner.select_workspace(self.config.migration)
            self._runners[p.root] = runner
        return self._runners[p.root]

    def _prepare_terraform(self, p: Phase) -> tuple[TerraformRunner, Path]:
        runner = self._ready_runner(p)
        return runner, self.tfvars(p)

    def plan(self, number: int) -> PlanReport:
        """`migrator plan --phase N`: the plan of the phase's Terraform step, nothing applied."""
        p = phase(number)
        self.check_identity(p.account)
        runner, var_file = self._prepare_terraform(p)
        return self._plan(p, runner, var_file)[1]

    def _apply_terraform(self, p: Phase, *, allow_table_replace: bool, converge: bool = False) -> dict[str, Any]:
        runner, var_file = self._prepare_terraform(p)
        for attempt in range(MAX_CONVERGE_APPLIES + 1):
            result, report = self._plan(p, runner, var_file)
            if report.table_replacements and not allow_table_replace:
                raise MigratorError(
                    f"the plan of phase {p.number} would destroy or replace DynamoDB table(s) "
                    f"{', '.join(report.table_replacements)}; nothing was applied (pass --allow-table-replace "
                    "only if you really mean it)"
                )
            if not result.has_changes:
                break
            if attempt == MAX_CONVERGE_APPLIES:
                raise MigratorError(
                    f"phase {p.number} does not converge: after {MAX_CONVERGE_APPLIES} applies the plan still "
                    f"has changes ({', '.join(a for _, a in report.changes)}); "
                    f"inspect `migrator plan --phase {p.number}`"
                )
            with self._step(f"terraform apply ({', '.join(f'{v} {k}' for k, v in report.counts.items() if v)})"):
                runner.apply(result.plan_file)
            if not converge:
                break
        return runner.output()

    # Phases ---------------------------------------------------------------------------------------
    def apply(
        self,
        number: int,
        *,
        allow_table_replace: bool = False,
        enable_stream: bool = False,
        enable_pitr: bool = False,
    ) -> None:
        p = phase(number)
        self.check_same_migration()
        self.check_order(p)
        self.check_identity(p.account)
        if p.number == 1:
            self.check_identity("source")
        if p.number in (3, 4):
            self.check_deadline()
        self._ready_runner(p)  # a missing or old Terraform or provider fails here, before any change
        self.console.rule(f"phase {p.number}: {p.name} — {p.account} account {self.account_id(p.account)}")
        self.state.data.setdefault("fingerprint", self.fingerprint())
        self.state.mark_phase(p.number, "in progress")
        try:
            if p.number == 1:
                self.check_names_free()
                self.preflight(enable_stream=enable_stream, enable_pitr=enable_pitr)
                outputs = self._apply_terraform(p, allow_table_replace=allow_table_replace)
                self.state.update("target_outputs", **outputs)
            elif p.number == 2:
                self.preflight(enable_stream=False, enable_pitr=False)
                outputs = self._apply_terraform(p, allow_table_replace=allow_table_replace)
                self.state.update("source_outputs", **outputs)
                self.export()
            elif p.number == 3:
                self.prepare_table_spec()
                outputs = self._apply_terraform(p, allow_table_replace=allow_table_replace, converge=True)
                self.state.update("target_outputs", **outputs)
                self.check_import()
            else:
                outputs = self._apply_terraform(p, allow_table_replace=allow_table_replace)
                self.state.update("source_outputs", **outputs)
                self.report_replication()
        except BaseException:
            self.state.mark_phase(p.number, "failed")
            raise
        self.state.mark_phase(p.number, "done")
        self.console.print(f"[bold green]phase {p.number} ({p.name}) done[/]")

    # Phase 1 ----------------------------------------------------------------------------------------
    def check_names_free(self) -> None:
        """The bucket and role names this migration needs are free, or already this migration's."""
        c = self.config
        if ops.bucket_taken_elsewhere(self.target.client("s3"), c.bucket_name):
            raise MigratorError(
                f"the export bucket {c.bucket_name} already exists in another account than the target "
                f"{c.target.account_id}; set bucket: to a free name"
            )
        own_state = self.state_dir / "terraform" / "target" / "state" / c.migration / "terraform.tfstate"
        if not own_state.exists():
            try:
                role = self.target.client("iam").get_role(RoleName=c.writer_role_name)["Role"]
            except ClientError as err:
                if ops.error_code(err) != "NoSuchEntity":
                    raise
                return
            raise MigratorError(
                f"a migration named {c.migration!r} already exists in the target account (role "
                f"{role['RoleName']} since {role.get('CreateDate')}) but its state is not in {self.state_dir}; "
                "choose another migration name, or run from the directory that holds its state"
            )

    def preflight(self, *, enable_stream: bool, enable_pitr: bool) -> None:
        c = self.config
        ddb = self.source.client("dynamodb")
        desc = ops.describe_source(ddb, c.source_table_name, c.source.account_id, c.source.region)
        ops.check_source_shape(desc)
        problem = ops.stream_problem(desc)
        if problem and problem != "off":
            raise MigratorError(
                f"the source table's stream has {problem}, but the replicator needs full item images; "
                "switch the stream to NEW_AND_OLD_IMAGES (disable it, then enable it with that view) and run phase 1 "
                "again"
            )
        pitr = ops.pitr_status(ddb, c.source_table_name)
        if problem == "off" and not enable_stream:
            raise MigratorError(
                "the source table has no stream; run phase 1 with --enable-stream to enable one "
                "(NEW_AND_OLD_IMAGES) before the export"
            )
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED" and not enable_pitr:
            raise MigratorError(
                "point-in-time recovery is off on the source table; run phase 1 with --enable-pitr to enable it"
            )
        stream = self.state.section("stream")
        if problem == "off":
            ddb.update_table(
                TableName=c.source_table_name,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            stream["enabled_by_migrator_at"] = iso(now())
            ops.wait_for(
                lambda: ops.stream_problem(ddb.describe_table(TableName=c.source_table_name)["Table"]) is None,
                timeout=300,
                what="the source stream to be enabled",
            )
            desc = ddb.describe_table(TableName=c.source_table_name)["Table"]
            self.console.print("[green]✓[/] stream enabled on the source table (NEW_AND_OLD_IMAGES)")
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
            ddb.update_continuous_backups(
                TableName=c.source_table_name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            self.console.print("[green]✓[/] point-in-time recovery enabled on the source table")
        if stream.get("arn") and stream["arn"] != desc["LatestStreamArn"] and self.state.section("export"):
            raise MigratorError(
                "the source table's stream changed since the export started, so the replicator would miss "
                "changes; start the migration again with a new migration name"
            )
        started = ops.stream_created_at(self.source.client("dynamodbstreams"), desc["LatestStreamArn"])
        stream.update(
            arn=desc["LatestStreamArn"],
            table_arn=desc["TableArn"],
            view_type=desc["StreamSpecification"]["StreamViewType"],
            created_at=iso(started),
        )
        self.state.update("source_table", item_count=desc.get("ItemCount"), size_bytes=desc.get("TableSizeBytes"))
        self.console.print(
            f"[green]✓[/] source table {c.source_table_name}: stream {stream['view_type']} "
            f"since {stream['created_at']},"
            " PITR on"
        )

    # Phase 2 ----------------------------------------------------------------------------------------
    def export(self) -> None:
        c = self.config
        ddb = self.source.client("dynamodb")
        exp = self.state.section("export")
        if exp.get("status") == "FAILED" or not exp.get("client_token"):
            attempt = int(exp.get("attempt", 0)) + 1
            export_time = now()
            exp.clear()
            exp.update(attempt=attempt, client_token=f"{c.migration}-export-{attempt}", export_time=iso(export_time))
            self.state.save()
        export_time = parse_iso(exp["export_time"])
        stream = self.state.section("stream")
        ops.validate_export_time(
            export_time,
            parse_iso(stream["created_at"]),
            ops.pitr_status(ddb, c.source_table_name),
            now(),
        )
        if not exp.get("arn"):
            resp = ddb.export_table_to_point_in_time(
                TableArn=stream["table_arn"],
                ExportTime=export_time,
                ClientToken=exp["client_token"],
                S3Bucket=c.bucket_name,
                S3BucketOwner=c.target.account_id,
                S3Prefix=c.export_s3_prefix,
                ExportFormat="DYNAMODB_JSON",
            )["ExportDescription"]
            start = resp.get("StartTime")
            exp.update(
                arn=resp["ExportArn"],
                status=resp["ExportStatus"],
                start_time=iso(start if isinstance(start, dt.datetime) else now()),
            )
            self.state.save()
            self.console.print(f"[green]✓[/] export started at ExportTime {exp['export_time']}")
        desc = self.wait_export(exp["arn"])
        if desc["ExportStatus"] != "COMPLETED":
            exp.update(status=desc["ExportStatus"], failure=desc.get("FailureMessage"))
            self.state.save()
            raise MigratorError(
                f"the export failed ({desc.get('FailureCode', 'no code')}: "
                f"{desc.get('FailureMessage', 'no message')}); "
                "fix the cause (bucket policy, PITR) and run phase 2 again to start a new export"
            )
        prefix = ops.find_data_prefix(
            self.target.client("s3"), c.bucket_name, c.export_s3_prefix, exp["arn"], desc.get("ExportManifest")
        )
        exp.update(
            status="COMPLETED",
            item_count=int(desc.get("ItemCount", 0)),
            billed_bytes=int(desc.get("BilledSizeBytes", 0)),
            end_time=iso(desc["EndTime"]) if isinstance(desc.get("EndTime"), dt.datetime) else iso(now()),
            data_prefix=prefix,
        )
        self.state.save()
        self.console.print(f"[green]✓[/] export complete: {exp['item_count']} items in s3://{c.bucket_name}/{prefix}")

    def wait_export(self, arn: str) -> dict[str, Any]:
        ddb = self.source.client("dynamodb")
        deadline = time.monotonic() + self.export_timeout
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console, transient=True
        ) as bar:
            task = bar.add_task("export in progress", total=None)
            while True:
                desc = dict(ddb.describe_export(ExportArn=arn)["ExportDescription"])
                if desc["ExportStatus"] != "IN_PROGRESS":
                    return desc
                if time.monotonic() > deadline:
                    raise MigratorError("the export is still in progress; run phase 2 again to keep watching it")
                bar.update(task, description=f"export {desc['ExportStatus'].lower()}")
                time.sleep(self.export_poll)

    # Phase 3 ----------------------------------------------------------------------------------------
    def prepare_table_spec(self) -> None:
        c = self.config
        imp = self.state.section("import")
        if imp.get("table_spec"):
            return
        exp = self.state.section("export")
        ddb = self.source.client("dynamodb")
        desc = ops.describe_source(ddb, c.source_table_name, c.source.account_id, c.source.region)
        imp["table_spec"] = ops.table_spec(
            desc,
            c,
            ttl_attribute=ops.ttl_attribute_of(ddb, c.source_table_name),
            import_source={
                "bucket": c.bucket_name,
                "bucket_owner": c.target.account_id,
                "key_prefix": exp["data_prefix"],
            },
        )
        self.state.save()

    def check_import(self) -> None:
        c = self.config
        ddb = self.target.client("dynamodb")
        table = ddb.describe_table(TableName=c.target_table_name)["Table"]
        expected = int(self.state.section("export")["item_count"])
        imp = self.state.section("import")
        details = None
        if c.endpoint_url:
            # moto implements ImportTable and DescribeImport but not ListImports: count the items instead.
            self.console.print("[yellow]![/] the emulator cannot list imports; counting the target's items instead")
        else:
            summaries = ddb.list_imports(TableArn=table["TableArn"]).get("ImportSummaryList", [])
            if summaries:
                latest = max(summaries, key=lambda s: s.get("StartTime") or dt.datetime.min.replace(tzinfo=dt.UTC))
                details = ddb.describe_import(ImportArn=latest["ImportArn"])["ImportTableDescription"]
        if details is not None:
            imp.update(
                arn=details["ImportArn"],
                status=details["ImportStatus"],
                imported=int(details.get("ImportedItemCount", 0)),
                errors=int(details.get("ErrorCount", 0)),
            )
            self.state.save()
            if details["ImportStatus"] != "COMPLETED":
                raise MigratorError(
                    f"the import ended {details['ImportStatus']} ({details.get('FailureMessage', 'no message')}); "
                    "look at its CloudWatch logs, remove the target table and run phase 3 again"
                )
            if int(details.get("ErrorCount", 0)):
                raise MigratorError(
                    f"the import reported {details['ErrorCount']} item errors; look at its CloudWatch logs, remove "
                    "the target table and run phase 3 again"
                )
            imported = int(details.get("ImportedItemCount", 0))
        else:
            imported = ops.count_items(ddb, c.target_table_name)
            imp.update(status="COMPLETED", imported=imported, errors=0, counted=True)
            self.state.save()
        if imported != expected:
            raise MigratorError(
                f"the import holds {imported} items but the export had {expected}; the target is incomplete, so "
                "remove the target table and run phase 3 again"
            )
        self.console.print(f"[green]✓[/] import complete: {imported} items, matching the export")

    # Phase 4 ----------------------------------------------------------------------------------------
    def report_replication(self) -> None:
        uuid = self.state.section("source_outputs").get("event_source_mapping_uuid")
        if not uuid:
            self.console.print("[yellow]![/] no event source mapping in the outputs")
            return
        mapping = self.source.client("lambda").get_event_source_mapping(UUID=uuid)
        self.state.update("replication", mapping_state=mapping.get("State"), checked_at=iso(now()))
        self.console.print(f"[green]✓[/] event source mapping {uuid} is {mapping.get('State')}")
        if self.config.endpoint_url:
            self.console.print(
                "an emulator does not run Lambda: replicate with `migrator replicate --local --until-caught-up`"
            )
        else:
            self.console.print("watch catch-up with `migrator status`; verify with `migrator verify`")
