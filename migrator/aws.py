"""Sessions and clients per account.

Nothing AWS happens at import time: a session is built when an account is first needed, by assuming the
configured role (or using the configured profile), and clients are created lazily from it with adaptive
retries and, when configured, the emulator endpoint.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config

RETRY_CONFIG: dict[str, Any] = {"mode": "adaptive", "max_attempts": 10}


def client_config(**overrides: Any) -> botocore.config.Config:
    """The botocore configuration every client of migrator uses."""
    settings: dict[str, Any] = {"retries": dict(RETRY_CONFIG), "max_pool_connections": 32}
    settings.update(overrides)
    return botocore.config.Config(**settings)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expiration: dt.datetime | None = None

    def as_env(self) -> dict[str, str]:
        """Environment variables that hand these credentials to a child process (terraform)."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(access_key_id='{self.access_key_id[:4]}…', expiration={self.expiration})"


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
    external_id: str | None = None
    _session: boto3.Session | None = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _base(self) -> boto3.Session:
        return boto3.Session(profile_name=self.profile, region_name=self.region)

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
        kwargs: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region,
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
