"""Fixtures for replicator tests: a processor wired to DynamoDB Local with a given environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cdk_replication.local import credentials_for_account

from replicator.config import load_config
from replicator.processor import Processor

from rep_helpers import SOURCE_ACCOUNT, local_assume_role


@pytest.fixture
def lambda_env(ddb_local, monkeypatch) -> Callable[[str, str], None]:
    """Sets the variables Lambda and the local runtime give the function: endpoint, region, credentials."""

    def apply(region: str, account: str = SOURCE_ACCOUNT) -> None:
        for name, value in ddb_local.endpoint_env().items():
            monkeypatch.setenv(name, value)
        for name, value in credentials_for_account(account).as_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_REGION", region)
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

    return apply


@pytest.fixture
def make_processor(lambda_env) -> Iterator[Callable[..., Processor]]:
    """Builds a :class:`Processor` from REPLICATION_* variables, as the handler does at cold start."""
    made: list[Processor] = []

    def build(env: dict[str, str], region: str, account: str = SOURCE_ACCOUNT, **kwargs: Any) -> Processor:
        lambda_env(region, account)
        processor = Processor(load_config(env), assume_role=local_assume_role, **kwargs)
        made.append(processor)
        return processor

    yield build
    for processor in made:
        processor.close()
