"""Fixtures for the command-line tests: DynamoDB Local tables and an in-process runner of ``main``."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cdk_replication.cli import main
from cdk_replication.local import DEFAULT_ACCOUNT, DynamoDBLocal, credentials_for_account

from .helpers import REGION


@dataclass
class CliRun:
    """Exit code and captured output of one in-process ``main`` call."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture()
def local(ddb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> DynamoDBLocal:
    """DynamoDB Local with the default account's credentials and region in the environment."""
    creds = credentials_for_account(DEFAULT_ACCOUNT)
    for name, value in {**creds.as_env(), "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    return ddb_local


@pytest.fixture()
def ddb(local: DynamoDBLocal) -> Any:
    """A low-level DynamoDB client on the default account's database in us-east-1."""
    return local.client("dynamodb", region=REGION)


@pytest.fixture()
def make_table(ddb: Any) -> Iterator[Callable[..., str]]:
    """``make_table(prefix, sort=None, pk_type="S")`` creates a table with a unique name and returns the
    name; the tables are deleted after the test."""
    created: list[str] = []

    def make(
        prefix: str,
        sort: tuple[str, str] | None = None,
        pk: tuple[str, str] = ("pk", "S"),
        stream: bool = True,
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        keys = [{"AttributeName": pk[0], "KeyType": "HASH"}]
        attrs = [{"AttributeName": pk[0], "AttributeType": pk[1]}]
        if sort:
            keys.append({"AttributeName": sort[0], "KeyType": "RANGE"})
            attrs.append({"AttributeName": sort[0], "AttributeType": sort[1]})
        extra: dict[str, Any] = {}
        if stream:
            extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs,
                         BillingMode="PAY_PER_REQUEST", **extra)
        created.append(name)
        return name

    yield make
    for name in created:
        ddb.delete_table(TableName=name)


@pytest.fixture()
def cli(local: DynamoDBLocal, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliRun]:
    """``cli("verify", SRC, TGT, ...)`` runs ``main`` in-process against DynamoDB Local (quiet), in a
    temporary working directory so default state files stay out of the checkout."""
    monkeypatch.chdir(tmp_path)

    def run(command: str, *args: str) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        code = main([command, "--endpoint-url", local.endpoint_url, "--quiet", *args], stdout=out, stderr=err)
        return CliRun(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(autouse=True)
def _quick_rechecks(quick_verify_rechecks: None) -> None:
    """Every test here plants differences that persist: no need to wait 1 s between verify's re-read rounds."""
