"""Client creation: one client per region/account/role, pool sized to the concurrency, role credentials that
refresh themselves before they expire."""

from __future__ import annotations

import datetime as dt
from typing import Any

from replicator.clients import ClientFactory
from replicator.config import TableRef

ROLE = "arn:aws:iam::222222222222:role/writer"


def test_clients_are_cached_and_sized(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "own")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "own")
    factory = ClientFactory(max_concurrency=17, session_name="s")
    a = factory.for_table(TableRef("t1", "eu-west-1", "111111111111"))
    assert factory.for_table(TableRef("t2", "eu-west-1", "111111111111")) is a  # same region and account
    assert factory.for_table(TableRef("t1", "us-east-1", "111111111111")) is not a
    config = a.meta.config
    assert config.max_pool_connections == 17
    assert config.tcp_keepalive is True
    assert config.retries["total_max_attempts"] == 1


def test_role_credentials_are_used_and_refreshed(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "own")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "own")
    calls: list[tuple[str, str]] = []

    def assume_role(role_arn: str, session_name: str) -> dict[str, Any]:
        calls.append((role_arn, session_name))
        # Expiring within botocore's mandatory refresh window: every use fetches new credentials.
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
        return {
            "AccessKeyId": f"ROLE{len(calls)}",
            "SecretAccessKey": "secret",
            "SessionToken": "token",
            "Expiration": expiry,
        }

    factory = ClientFactory(max_concurrency=4, session_name="cdk-replication-orders", assume_role=assume_role)
    client = factory.for_table(TableRef("t", "eu-west-1", "222222222222", ROLE))
    credentials = client._request_signer._credentials  # botocore keeps the resolved credentials here
    first = credentials.get_frozen_credentials().access_key
    second = credentials.get_frozen_credentials().access_key
    assert first.startswith("ROLE") and second != first
    assert calls[0] == (ROLE, "cdk-replication-orders")


def test_clients_share_service_models_but_not_credentials(monkeypatch):
    """Cold start (issue 17): one model loader for every client; each client's own credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "own")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "own")

    def assume_role(role_arn: str, session_name: str) -> dict[str, Any]:
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        return {"AccessKeyId": "ROLE", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expiry}

    factory = ClientFactory(max_concurrency=4, session_name="s", assume_role=assume_role)
    own = factory.for_table(TableRef("t", "eu-west-1", "111111111111"))
    role = factory.for_table(TableRef("t", "us-east-1", "222222222222", ROLE))
    other = factory.for_table(TableRef("t", "us-west-2", "111111111111"))
    assert own._loader is role._loader is other._loader
    keys = [c._request_signer._credentials.get_frozen_credentials().access_key for c in (own, role, other)]
    assert keys == ["own", "ROLE", "own"]
