"""DynamoDB clients, one per target region/account, created lazily and kept for the container's life.

A target with a ``roleArn`` is written with credentials of that role (STS AssumeRole); they refresh
themselves before they expire, because a warm container outlives the default one-hour session.
Endpoints are never read here: boto3 honours ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_STS`` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.useragent import UserAgentString

from .config import TableRef

#: Seconds to wait for a TCP connection.
CONNECT_TIMEOUT_S = 2.0
#: Seconds to wait for a response; a stuck request is abandoned and retried within the deadline.
READ_TIMEOUT_S = 10.0
#: Lifetime asked of an assumed-role session, in seconds (STS's default and the role chaining maximum).
ROLE_SESSION_SECONDS = 3600

#: The User-Agent header, built once per container: botocore otherwise rebuilds it twice for every request,
#: about 15% of the client CPU of a conditional PutItem (benchmarks/, docs/performance.md).
USER_AGENT = UserAgentString.from_environment().to_string() + " lib/cdk-replication"

#: (role_arn, session_name) -> STS ``Credentials`` dict; replaceable in tests.
AssumeRole = Callable[[str, str], dict[str, Any]]


def client_config(max_concurrency: int) -> BotoConfig:
    """One pooled connection per concurrent writer; botocore retries off (the writers retry within the
    Lambda deadline); TCP keepalive so idle pooled connections survive between invocations.

    No client-side parameter validation (about 10% of a write's client CPU): every request is built by this
    package from images DynamoDB itself produced, and DynamoDB validates it anyway; an invalid request comes
    back as a non-retryable ``ValidationException`` for its item instead of a ``ParamValidationError``.
    """
    return BotoConfig(
        max_pool_connections=max_concurrency,
        retries={"mode": "standard", "total_max_attempts": 1},
        tcp_keepalive=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        parameter_validation=False,
        user_agent=USER_AGENT,
    )


def sts_assume_role(role_arn: str, session_name: str) -> dict[str, Any]:
    """AssumeRole through the function's own credentials (regional STS endpoint of ``AWS_REGION``)."""
    sts = boto3.session.Session().client("sts")
    return sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=ROLE_SESSION_SECONDS)[
        "Credentials"
    ]


class _AssumedRoleProvider(CredentialProvider):
    """Credentials of one role, refreshed by botocore shortly before they expire."""

    METHOD = "cdk-replication-assume-role"
    CANONICAL_NAME = "CdkReplicationAssumeRole"

    def __init__(self, role_arn: str, session_name: str, assume_role: AssumeRole) -> None:
        super().__init__()
        self._role_arn = role_arn
        self._session_name = session_name
        self._assume_role = assume_role

    def _fetch(self) -> dict[str, Any]:
        creds = self._assume_role(self._role_arn, self._session_name)
        expiry = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry if isinstance(expiry, str) else expiry.isoformat(),
        }

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(
            metadata=self._fetch(), refresh_using=self._fetch, method=self.METHOD
        )


class ClientFactory:
    """Creates and caches one DynamoDB client per (region, account, role).

    Thread-safe: the writers ask for clients from the pool's threads.

    Args:
        max_concurrency: size of each client's connection pool.
        session_name: RoleSessionName for AssumeRole (shows in the target account's CloudTrail).
        assume_role: how to call STS; default :func:`sts_assume_role`.
    """

    def __init__(self, max_concurrency: int, session_name: str, assume_role: AssumeRole | None = None) -> None:
        self._config = client_config(max_concurrency)
        self._session_name = session_name[:64]
        self._assume_role = assume_role or sts_assume_role
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()
        # Every client's session reads botocore's service models through one loader, which caches them: a
        # client of another region or role then costs ~10 ms of CPU at cold start instead of ~55 ms.
        # Sessions stay one per client, so that each keeps its own credentials (a role's never leak).
        self._loader: Any = None

    def for_table(self, table: TableRef) -> Any:
        cache_key = (table.region, table.account, table.role_arn)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                client = self._create(table)
                self._clients[cache_key] = client
            return client

    def _core_session(self) -> botocore.session.Session:
        """A new botocore session that shares the factory's model loader (called under the lock)."""
        core = botocore.session.get_session()
        if self._loader is None:
            self._loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", self._loader)
        return core

    def _create(self, table: TableRef) -> Any:
        core = self._core_session()
        if table.role_arn is not None:
            # The role's provider goes first in the chain, so the function's own credentials are never used
            # for this target.
            core.get_component("credential_provider").insert_before(
                "env", _AssumedRoleProvider(table.role_arn, self._session_name, self._assume_role)
            )
        session = boto3.session.Session(botocore_session=core)
        return session.client("dynamodb", region_name=table.region, config=self._config)
