"""Sessions and clients per account.

Nothing AWS happens at import time: a session is built when an account is first needed, by assuming the
configured role (or using the configured profile), and clients are created lazily from it. The retry
settings of every botocore client migrator makes are here, and only here: :data:`RETRY_CONFIG` for the
commands that change things, :data:`QUICK` for reads that must answer fast and say what they could not
read (``migrator status``). Retries above botocore (``UnprocessedItems``, batch retries under a deadline)
are :mod:`migrator.replicator.batch`'s, with the limits of the configuration's ``retry:``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.loaders
import botocore.session

RETRY_CONFIG: dict[str, Any] = {"mode": "adaptive", "max_attempts": 10}
#: Client settings for reads that should answer quickly rather than retry for minutes.
QUICK: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 3}, "connect_timeout": 5}


def client_config(**overrides: Any) -> botocore.config.Config:
    """The botocore configuration every client of migrator uses (``overrides`` win)."""
    settings: dict[str, Any] = {"retries": dict(RETRY_CONFIG), "max_pool_connections": 32}
    settings.update(overrides)
    return botocore.config.Config(**settings)


_loader_lock = threading.Lock()
_loader: botocore.loaders.Loader | None = None


def botocore_session() -> botocore.session.Session:
    """A new botocore session that shares one data loader with every other one of this process.

    Each session otherwise parses the service models and ``endpoints.json`` again (about 0.1 s per
    client); sessions differ only in their credentials, so what they load is the same.
    """
    global _loader
    session = botocore.session.Session()
    with _loader_lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
    return session


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def as_env(self) -> dict[str, str]:
        """Environment variables that hand these credentials to a child process (terraform)."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(access_key_id='{self.access_key_id[:4]}…')"


@dataclass
class AccountSession:
    """A lazily-built boto3 session for one account.

    ``role_arn`` → the base credentials assume it; ``profile`` → that named profile; neither → the
    default credential chain.
    """

    account_id: str
    region: str
    role_arn: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    session_name: str = "migrator"
    _session: boto3.Session | None = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _base(self) -> boto3.Session:
        return boto3.Session(profile_name=self.profile, region_name=self.region, botocore_session=botocore_session())

    @property
    def session(self) -> boto3.Session:
        with self._lock:
            if self._session is None:
                self._session = self._build()
            return self._session

    def _build(self) -> boto3.Session:
        base = self._base()
        if not self.role_arn:
            return base
        sts = base.client("sts", endpoint_url=self.endpoint_url, config=client_config())
        creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.session_name)["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region,
            botocore_session=botocore_session(),
        )

    def client(self, service: str, **config: Any) -> Any:
        """A cached client for ``service`` in this account (adaptive retries, emulator endpoint if set)."""
        if self.endpoint_url:
            # An emulator answers big scans slowly; don't let botocore's 60 s read timeout retry them.
            config.setdefault("read_timeout", 600)
        key = service if not config else f"{service}:{sorted(config.items())}"
        client = self._clients.get(key)
        if client is None:
            make: Any = self.session.client  # typed per service by boto3-stubs; callers use Any
            client = make(service, endpoint_url=self.endpoint_url, config=client_config(**config))
            self._clients[key] = client
        return client

    def credentials(self) -> Credentials:
        frozen = self.session.get_credentials()
        if frozen is None:
            raise RuntimeError("no AWS credentials found")
        c = frozen.get_frozen_credentials()
        if not c.access_key or not c.secret_key:
            raise RuntimeError("incomplete AWS credentials")
        return Credentials(c.access_key, c.secret_key, c.token)

    def caller_account(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])
