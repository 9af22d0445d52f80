"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk_replication.local import DynamoDBLocal

ROOT = Path(__file__).resolve().parent.parent

# jsii runs Node: prefer the supported Node that package.json installs (the Makefile sets this too; this
# covers `pytest` run by hand from an activated venv).
_node = ROOT / "node_modules" / ".bin" / "node"
if _node.exists():
    os.environ.setdefault("JSII_NODE", str(_node))


@pytest.fixture(scope="session")
def ddb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local process per test session (per xdist worker); tests use their own table names."""
    with DynamoDBLocal() as ddb:
        yield ddb
