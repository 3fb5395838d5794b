"""One migration as every command sees it: its configuration, its two accounts, its state and its reporter.

A :class:`MigrationContext` holds what a command needs to work on one migration and nothing that does
work: sessions are built lazily (nothing AWS happens until a client is asked for), the state is read
afresh on every access (:mod:`migrator.state`), and output goes through the reporter
(:mod:`migrator.progress`). Phases, data steps and read models take a context; the CLI makes one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from .aws.session import AccountSession
from .config import Account, AccountConfig, MigrationConfig, load_config, state_dir_for
from .infra.backend import LocalBackend
from .progress import QuietReporter, Reporter
from .replicator.batch import RetryPolicy
from .state import MigrationState


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
        return state_dir_for(self.config, self.config_path)

    @functools.cached_property
    def state(self) -> MigrationState:
        return MigrationState(self.state_dir)

    @functools.cached_property
    def backend(self) -> LocalBackend:
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

    def fingerprint(self) -> dict[str, str]:
        """What this migration moves: ``account/region/table`` of the source and of the target."""
        c = self.config
        return {
            "source": f"{c.source.account_id}/{c.source.region}/{c.source_table_name}",
            "target": f"{c.target.account_id}/{c.target.region}/{c.target_table_name}",
        }
