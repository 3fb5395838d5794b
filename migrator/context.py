"""One migration as every command sees it: its configuration, its two accounts, its state and its reporter.

A :class:`MigrationContext` holds what a command needs to work on one migration and nothing that does
work: sessions are built lazily (nothing AWS happens until a client is asked for), the migration
document is read afresh on every access from the state bucket (:mod:`migrator.state`), the lock is there
too (:mod:`migrator.lock`), and output goes through the reporter (:mod:`migrator.progress`). The cache
directory (``.migrator/<migration>/`` beside the config) holds only what can be rebuilt: rendered tfvars,
saved plans, Terraform's data dir, the zip. Phases, data steps and read models take a context; the CLI
makes one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aws.session import AccountSession
from .config import Account, AccountConfig, MigrationConfig, load_config, state_dir_for
from .errors import MigratorError
from .infra.backend import LocalBackend, S3Backend
from .infra.state_bucket import bucket_state
from .lock import MigrationLock
from .progress import QuietReporter, Reporter
from .replicator.batch import RetryPolicy
from .state import MigrationState, S3Store


@dataclass
class Waits:
    """How long and how often migrator waits for AWS (tests and the demo shorten them)."""

    export_timeout_s: float = 6 * 3600
    export_poll_s: float = 5.0
    import_poll_s: float = 10.0


@dataclass
class MigrationContext:
    config: MigrationConfig
    config_path: Path
    report: Reporter = field(default_factory=QuietReporter)
    waits: Waits = field(default_factory=Waits)

    @classmethod
    def load(cls, config_path: Path, report: Reporter | None = None) -> MigrationContext:
        """The context of the configuration at ``config_path`` (validated before any AWS call)."""
        return cls(load_config(config_path), config_path, report or QuietReporter())

    # Where things are kept ------------------------------------------------------------------------
    @functools.cached_property
    def state_dir(self) -> Path:
        """The local cache directory (``.migrator/<migration>/``): nothing in it that cannot be rebuilt."""
        return state_dir_for(self.config, self.config_path)

    @functools.cached_property
    def state_session(self) -> AccountSession:
        """The state bucket's account, in the bucket's region."""
        account = self.config.state.account
        if self.config.state_region == self.account_config(account).region:
            return self.session(account)
        c = self.account_config(account)
        return AccountSession(
            c.account_id,
            self.config.state_region,
            c.role_arn,
            c.profile,
            self.config.endpoint_url,
            session_name=f"migrator-{self.config.migration}"[:64],
        )

    def state_s3(self) -> Any:
        return self.state_session.client("s3")

    @functools.cached_property
    def state(self) -> MigrationState:
        """The migration document in the state bucket (``<prefix>/<migration>/state.json``)."""
        c = self.config
        return MigrationState(store=S3Store(self.state_s3, c.state_bucket, c.state_key))

    @functools.cached_property
    def lock(self) -> MigrationLock:
        c = self.config
        return MigrationLock(self.state_s3, c.state_bucket, c.lock_key)

    def state_bucket_exists(self) -> bool:
        """True when the state bucket exists and is the state account's (refused when another owns it)."""
        from .infra.state_bucket import refuse_foreign

        found = bucket_state(self.state_s3(), self.config.state_bucket, self.config.state_account.account_id)
        if found == "foreign":
            raise refuse_foreign(self.config)
        return found == "present"

    @functools.cached_property
    def backend(self) -> S3Backend:
        return S3Backend(self.config, self.state_dir, self.state_s3())

    @functools.cached_property
    def offline_backend(self) -> LocalBackend:
        """For a plan before the state bucket exists: an empty local state."""
        return LocalBackend(self.state_dir)

    # Accounts -------------------------------------------------------------------------------------
    def account_config(self, account: Account) -> AccountConfig:
        return self.config.source if account == "source" else self.config.target

    def account_id(self, account: Account) -> str:
        return self.account_config(account).account_id

    def _session(self, account: Account) -> AccountSession:
        c = self.account_config(account)
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
        return self._session("source")

    @functools.cached_property
    def target(self) -> AccountSession:
        return self._session("target")

    def session(self, account: Account) -> AccountSession:
        return self.source if account == "source" else self.target

    # Policies -------------------------------------------------------------------------------------
    @functools.cached_property
    def retry(self) -> RetryPolicy:
        """The retry policy of every batch call migrator makes (the configuration's ``retry:``)."""
        r = self.config.retry
        return RetryPolicy(max_attempts=r.max_attempts, base_delay=r.base_delay_s, max_delay=r.max_delay_s)

    def check_fingerprint(self) -> None:
        """Refuse a configuration whose source or target is not what this migration's document records."""
        recorded = self.state.data.get("fingerprint")
        if not recorded:
            return
        mine = self.fingerprint()
        if recorded != mine:
            c = self.config
            raise MigratorError(
                f"the migration {c.migration!r} moves {recorded.get('source')} to {recorded.get('target')}, not "
                f"{mine['source']} to {mine['target']} as {self.config_path.name} says; restore those names, or "
                "give this migration another name"
            )

    def fingerprint(self) -> dict[str, str]:
        """What this migration moves: ``account/region/table`` of the source and of the target."""
        c = self.config
        return {
            "source": f"{c.source.account_id}/{c.source.region}/{c.source_table_name}",
            "target": f"{c.target.account_id}/{c.target.region}/{c.target_table_name}",
        }
