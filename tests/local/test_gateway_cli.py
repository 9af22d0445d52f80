"""The command line through the gateway (issue 10, defect 1): an operator of the source account reaches a
replica in another account by its table ARN, where the replica's resource policy lets that operator in, and a
plain name means a table of the operator's own account, as on AWS."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cdk_replication.cli import main
from cdk_replication.local import DynamoDBLocal, Gateway

REGION = "us-east-1"
SOURCE, REPLICA = "111111111111", "222222222222"
OPERATOR = f"arn:aws:iam::{SOURCE}:user/operator"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}


def _table(ddb: DynamoDBLocal, account: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ddb.client(region=REGION, account=account).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name


def _arn(account: str, name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{account}:table/{name}"


def _items(ddb: DynamoDBLocal, account: str, name: str) -> dict[str, dict[str, Any]]:
    pages = ddb.client(region=REGION, account=account).get_paginator("scan").paginate(TableName=name,
                                                                                      ConsistentRead=True)
    return {item["pk"]["S"]: item for page in pages for item in page["Items"]}


@pytest.fixture()
def setup(ddb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A gateway, a source table in 111111111111 with 40 items, a replica in 222222222222 whose resource
    policy allows the operator, and the operator's credentials in the environment."""
    with Gateway(ddb_local) as gateway:
        source, replica = _table(ddb_local, SOURCE, "cli-src"), _table(ddb_local, REPLICA, "cli-rep")
        client = ddb_local.client(region=REGION, account=SOURCE)
        for i in range(40):
            client.put_item(TableName=source, Item={"pk": {"S": f"k{i:02d}"}, "v": {"N": str(i)}})
        gateway.set_resource_policy(_arn(REPLICA, replica), {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": OPERATOR}, "Action": "dynamodb:*",
            "Resource": _arn(REPLICA, replica)}]})
        creds = gateway.register_principal(OPERATOR, [ADMIN])
        for name, value in {**creds.as_env(), "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)
        yield {"gateway": gateway, "source": source, "replica": replica}


def _cli(gateway: Gateway, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([args[0], "--endpoint-url", gateway.endpoint_url, "--quiet", *args[1:]], stdout=out, stderr=err)
    return code, out.getvalue() + err.getvalue()


def test_backfill_and_verify_repair_reach_a_replica_in_another_account_by_arn(setup, ddb_local):
    gateway, source, replica = setup["gateway"], setup["source"], setup["replica"]
    code, output = _cli(gateway, "backfill", source, _arn(REPLICA, replica))
    assert code == 0, output
    assert _items(ddb_local, REPLICA, replica) == _items(ddb_local, SOURCE, source)
    assert replica not in ddb_local.client(region=REGION, account=SOURCE).list_tables()["TableNames"]

    target = ddb_local.client(region=REGION, account=REPLICA)
    target.delete_item(TableName=replica, Key={"pk": {"S": "k03"}})
    target.put_item(TableName=replica, Item={"pk": {"S": "k07"}, "v": {"N": "700"}})
    code, output = _cli(gateway, "verify", source, _arn(REPLICA, replica), "--repair")
    assert code in (0, 1), output  # differences found (and repaired)
    assert _items(ddb_local, REPLICA, replica) == _items(ddb_local, SOURCE, source)
    assert gateway.stats.denials == []


def test_a_plain_name_is_a_table_of_the_operators_own_account(setup, ddb_local):
    gateway, source, replica = setup["gateway"], setup["source"], setup["replica"]
    code, output = _cli(gateway, "backfill", source, replica)
    # DescribeTable answers ResourceNotFoundException: no such table in 111111111111, as on AWS.
    assert code == 2 and "does not exist (or not in this account)" in output, output
    assert _items(ddb_local, REPLICA, replica) == {}


def test_a_replica_without_a_resource_policy_for_the_operator_is_refused(setup, ddb_local):
    gateway, source = setup["gateway"], setup["source"]
    closed = _table(ddb_local, REPLICA, "cli-closed")
    code, output = _cli(gateway, "backfill", source, _arn(REPLICA, closed))
    assert code != 0 and ("AccessDenied" in output or "not authorized" in output), output
    assert _items(ddb_local, REPLICA, closed) == {}
    assert gateway.stats.denials and "because no resource-based policy allows" in gateway.stats.denials[0]
