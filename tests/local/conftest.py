"""Fixtures of the local runtime tests (DynamoDB Local comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdk_replication.local import LocalKinesis


@pytest.fixture(scope="session")
def local_kinesis() -> Iterator[LocalKinesis]:
    """One moto Kinesis server per test session; tests use their own stream names."""
    with LocalKinesis() as kinesis:
        yield kinesis
