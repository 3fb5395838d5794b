"""The one orchestrator of the phases: order → identity → deadline → init/workspace → plan → guard → apply
→ data step (docs/architecture.md, "The flow of apply").

A phase declares what it needs (:class:`.base.Phase`); this module does the rest, the same way for every
phase. ``plan`` runs the same steps up to the plan and changes nothing.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..context import MigrationContext
from ..errors import MigratorError
from ..infra.plan import PlanReport, report
from ..infra.render import render, write_tfvars
from ..infra.state_bucket import ensure_state_bucket
from ..infra.terraform import CallTime, PlanResult, TerraformRunner, child_env, resource_times
from ..resources import bundle_root, terraform_root
from . import IMPORT, PHASES, check_options, phase
from .base import Account, ApplyOptions, Phase
from .guards import check_deadline, check_identity, check_order, check_same_migration

MAX_CONVERGE_APPLIES = 4
SLOW_RESOURCE_S = 10.0  # an apply names its slowest resource when it took at least this long


def common_variables(ctx: MigrationContext) -> dict[str, Any]:
    """What every root's tfvars context holds, whatever the phase."""
    c = ctx.config
    return {
        "migration": c.migration,
        "source": {"account_id": c.source.account_id, "region": c.source.region},
        "target": {"account_id": c.target.account_id, "region": c.target.region},
        "endpoint_url": c.endpoint_url,
        "target_table_name": c.target_table_name,
    }


def root_variables(ctx: MigrationContext, root: Account, current: Phase) -> dict[str, Any]:
    """``root``'s tfvars context when ``current`` runs: every phase of that root that has started (or is
    ``current``) adds its share, in phase order, so a re-run of an earlier phase keeps what later ones
    added (re-running phase 1 after phase 3 keeps the table; phase 2 after phase 4 keeps the mapping on)."""
    variables = common_variables(ctx)
    for p in PHASES:
        if root in p.roots and (p == current or ctx.state.phase_status(p.number) != "not started"):
            p.variables(ctx, root, variables)
    return variables


def recorded_outputs(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A root's outputs as recorded after an apply: ``terraform output -json`` leaves out outputs that are
    null, so one that became null (cleanup's) is recorded as null instead of keeping its old value."""
    return {**dict.fromkeys(previous), **current}


def offline_root(cache_dir: Path, root: Account) -> Path:
    """A copy of ``root`` (and the modules beside it) whose backend is local: for a plan made before the state
    bucket exists, against an empty state. The packaged roots are never written to."""
    bundle = cache_dir / "offline"
    for part in ("terraform", "modules"):
        shutil.rmtree(bundle / part, ignore_errors=True)
        shutil.copytree(bundle_root() / part, bundle / part, ignore=shutil.ignore_patterns(".terraform*"))
    shutil.copy2(terraform_root(root) / ".terraform.lock.hcl", bundle / "terraform" / root / ".terraform.lock.hcl")
    override = 'terraform {\n  backend "local" {}\n}\n'
    (bundle / "terraform" / root / "backend_override.tf").write_text(override, encoding="utf-8")
    return bundle / "terraform" / root


@dataclass
class PhaseRunner:
    """Runs the phases of one migration; keeps each root's initialised Terraform for the process."""

    ctx: MigrationContext
    #: Every Terraform command run for this migration by this runner, in order, with its wall time.
    calls: list[CallTime] = field(default_factory=list, init=False, repr=False)
    _terraform: dict[Account, TerraformRunner] = field(default_factory=dict, init=False, repr=False)
    _offline: bool | None = field(default=None, init=False, repr=False)

    # Terraform ------------------------------------------------------------------------------------
    def offline(self) -> bool:
        """True when the state bucket does not exist yet: only a plan can run, against an empty state."""
        if self._offline is None:
            self._offline = not self.ctx.state_bucket_exists()
            if self._offline:
                self.ctx.report.note(
                    f"the state bucket {self.ctx.config.state_bucket} does not exist yet (phase 1 creates it), "
                    "so this plan is against an empty state"
                )
        return self._offline

    def terraform(self, root: Account) -> TerraformRunner:
        """Terraform checked, initialised and in the migration's workspace: changes no account."""
        if root not in self._terraform:
            ctx = self.ctx
            data_dir = ctx.state_dir / "terraform" / root / "data"
            offline = self.offline()
            backend = ctx.offline_backend if offline else ctx.backend
            runner = TerraformRunner(
                root=offline_root(ctx.state_dir, root) if offline else terraform_root(root),
                data_dir=data_dir,
                env=child_env(ctx.session(root).credentials().as_env(), data_dir),
                backend_config=backend.init_config(root),
            )
            runner.calls = self.calls
            with ctx.report.step(f"terraform init ({root}, {backend.name} backend)"):
                runner.check_version()
                runner.init()
                runner.select_workspace(ctx.config.migration)
            self._terraform[root] = runner
        return self._terraform[root]

    def tfvars(self, p: Phase, root: Account) -> Path:
        data = render(f"{root}.tfvars.json.j2", root_variables(self.ctx, root, p))
        return write_tfvars(self.ctx.state_dir / "tfvars" / f"phase-{p.number}.{root}.tfvars.json", data)

    def _plan(self, p: Phase, root: Account, var_file: Path) -> tuple[PlanResult, PlanReport]:
        ctx = self.ctx
        runner = self.terraform(root)
        plan_file = ctx.state_dir / "plans" / f"phase-{p.number}.{root}.tfplan"
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        with ctx.report.step(f"terraform plan ({root}, workspace {ctx.config.migration})"):
            result = runner.plan(var_file, plan_file)
            # `plan -detailed-exitcode` exits 0 only for an empty diff: nothing to read then (`show -json` loads
            # the provider again, a few seconds each time), and nothing to guard.
            plan_json = runner.show(plan_file) if result.has_changes else {}
        summary = report(
            plan_json,
            phase=p.number,
            name=p.name,
            account=root,
            account_id=ctx.account_id(root),
            root=root,
            workspace=ctx.config.migration,
            has_changes=result.has_changes,
            text=result.text,
        )
        return result, summary

    def _apply_root(self, p: Phase, root: Account, var_file: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Plan, refuse any DynamoDB table destroy or replace (invariant 6 of docs/architecture.md), apply the
        saved plan; again until the plan is empty when the phase converges. Returns the root's outputs and the
        ``(kind, address)`` changes applied. Only Terraform runs here (no AWS client), so two roots can run at once."""
        runner = self.terraform(root)
        p.reconcile(self.ctx, root, runner, var_file)
        applied: list[tuple[str, str]] = []
        for attempt in range(MAX_CONVERGE_APPLIES + 1):
            result, summary = self._plan(p, root, var_file)
            if summary.table_replacements:
                tainted = [
                    r.address for r in runner.resources() if r.tainted and r.address in summary.table_replacements
                ]
                why = (
                    f"it is tainted ({', '.join(tainted)}: a creation that did not finish); run phase "
                    f"{IMPORT.number}, which waits for the import and untaints the table"
                    if tainted
                    else f"`migrator plan --phase {p.number}` shows the change that forces it: undo it"
                )
                raise MigratorError(
                    f"the plan of phase {p.number} would destroy or replace the DynamoDB table(s) "
                    f"{', '.join(summary.table_replacements)}, which migrator never does; nothing was applied ({why})"
                )
            if not result.has_changes:
                break
            if attempt == MAX_CONVERGE_APPLIES:
                raise MigratorError(
                    f"phase {p.number} does not converge: after {MAX_CONVERGE_APPLIES} applies the plan still "
                    f"has changes ({', '.join(a for _, a in summary.changes)}); "
                    f"inspect `migrator plan --phase {p.number}`"
                )
            counts = ", ".join(f"{v} {k}" for k, v in summary.counts.items() if v)
            with self.ctx.report.step(f"terraform apply ({root}: {counts})"):
                output = runner.apply(result.plan_file)
            slowest = max(resource_times(output), key=lambda r: r.seconds, default=None)
            if slowest is not None and slowest.seconds >= SLOW_RESOURCE_S:
                self.ctx.report.info(f"  slowest: {slowest.address} {slowest.action} in {slowest.seconds:.0f} s")
            applied += summary.changes
            if not p.converge:
                break
        return runner.output(), applied

    def _record(self, p: Phase, root: Account, outputs: dict[str, Any], applied: list[tuple[str, str]]) -> None:
        p.applied(self.ctx, root, applied)
        section = f"{root}_outputs"
        self.ctx.state.replace(section, recorded_outputs(self.ctx.state.section(section), outputs))

    def _apply_roots(self, p: Phase) -> None:
        """Each root of ``p``, its variables rendered first (here, in the calling thread): one after the other,
        each recorded before the next starts; or, when the phase says they are independent, all at once, each
        one that succeeded recorded once all have ended, and then the first failure raised."""
        var_files = {root: self.tfvars(p, root) for root in p.roots}
        if not (p.roots_together and len(p.roots) > 1):
            for root in p.roots:
                self._record(p, root, *self._apply_root(p, root, var_files[root]))
            return
        results: dict[Account, tuple[dict[str, Any], list[tuple[str, str]]]] = {}
        failures: list[BaseException] = []

        def work(root: Account) -> None:
            try:
                results[root] = self._apply_root(p, root, var_files[root])
            except BaseException as err:  # re-raised below, in the calling thread
                failures.append(err)

        threads = [threading.Thread(target=work, args=(root,), name=f"terraform-{root}") for root in p.roots]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C or SIGTERM reach this thread only: stop every Terraform, then say so
            for root in p.roots:
                self.terraform(root).interrupt()
            for thread in threads:
                thread.join()
            raise
        for root in p.roots:
            if root in results:
                self._record(p, root, *results[root])
        if failures:
            raise failures[0]

    # The commands ---------------------------------------------------------------------------------
    def plan(self, number: int) -> list[PlanReport]:
        """`migrator plan --phase N`: the plan of each of the phase's roots, nothing applied."""
        p = phase(number)
        reports = []
        for root in p.roots:
            check_identity(self.ctx, root)
            self.terraform(root)
            reports.append(self._plan(p, root, self.tfvars(p, root))[1])
        return reports

    def apply(self, number: int, options: ApplyOptions | None = None) -> None:
        """`migrator apply --phase N`: the phase's checks, Terraform in its roots, its data steps, under the
        migration's lock."""
        ctx = self.ctx
        p = phase(number)
        options = options or ApplyOptions()
        check_options(p, options)
        check_same_migration(ctx)
        check_order(ctx, p)
        for account in p.accounts:
            check_identity(ctx, account)
        check_identity(ctx, ctx.config.state.account)
        if p.within_retention:
            check_deadline(ctx)
        p.check(ctx, options)
        if ensure_state_bucket(ctx.state_s3(), ctx.config):
            ctx.report.done(
                f"state bucket {ctx.config.state_bucket} created in the {ctx.config.state.account} account "
                "(versioned, encrypted, public access blocked, TLS only)"
            )
        self._offline = False
        with ctx.lock.held(f"migrator apply --phase {p.number}"):
            self._apply_locked(p, options)

    def _apply_locked(self, p: Phase, options: ApplyOptions) -> None:
        ctx = self.ctx
        check_order(ctx, p)  # again, now that no other run can change the document
        for root in p.roots:
            self.terraform(root)  # a missing or old Terraform or provider fails here, before any change
        accounts = " + ".join(f"{a} account {ctx.account_id(a)}" for a in p.roots)
        ctx.report.heading(f"phase {p.number}: {p.name} — {accounts}")
        ctx.state.setdefault("fingerprint", ctx.fingerprint())
        ctx.state.mark_phase(p.number, "in progress")
        try:
            p.before_terraform(ctx, options)
            self._apply_roots(p)
            p.after_terraform(ctx)
        except BaseException:
            ctx.state.mark_phase(p.number, "failed")
            raise
        ctx.state.mark_phase(p.number, "done")
        ctx.report.done(f"phase {p.number} ({p.name}) done")
