"""Adversarial review of the local runtime's side of replica transforms (issue 15, rule 9): each test states
what AWS does and is marked ``xfail(strict=True)`` while the local runtime differs (review r15a)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import Mask, ReplicatedTable, ReplicaTransform, TableLocation
from cdk_replication.cli import main
from cdk_replication.local import credentials_for_account, deploy
from cdk_replication.local.gateway import Gateway

ACCOUNT, TABLE = "888888888888", "TaggedPeople"


def _gateway_client(gateway: Gateway, region: str) -> Any:
    """A DynamoDB client through the gateway (tags live there), as the account's root."""
    creds = credentials_for_account(ACCOUNT)
    return boto3.client("dynamodb", region_name=region, endpoint_url=gateway.endpoint_url,
                        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key)


@pytest.fixture(scope="module")
def masked_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("review-tagged-app")
    app = cdk.App(outdir=str(outdir))
    ReplicatedTable(
        app, TABLE,
        source=TableLocation(region="us-east-1", account=ACCOUNT),
        replicas=[TableLocation(region="eu-west-1", transform=ReplicaTransform(masks={"email": Mask.hmac()}))],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        dashboard=False,
    )
    app.synth()
    return outdir


def test_the_transformed_replica_carries_its_transform_tag_locally(masked_app, ddb_local):
    """Contract C's safety net: the CLI refuses to write into a table tagged ``cdk-replication:transform``
    unless it applies the spec its source publishes. On AWS, CloudFormation creates the replica with its
    template ``Tags``; the local deploy must too, or locally every replica looks untransformed: a CLI path
    that forgot the transform would write raw values into a masked replica and pass every local test, and
    only AWS would refuse it (rule 9: never kinder than AWS)."""
    with deploy(masked_app, ddb_local) as deployment:
        client = _gateway_client(deployment.gateway, "eu-west-1")
        arn = client.describe_table(TableName=TABLE)["Table"]["TableArn"]
        tags = {t["Key"]: t["Value"] for t in client.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}
        assert tags.get("cdk-replication:transform") == "published"
        source = _gateway_client(deployment.gateway, "us-east-1")
        source_arn = source.describe_table(TableName=TABLE)["Table"]["TableArn"]
        assert "cdk-replication:transform" not in {
            t["Key"] for t in source.list_tags_of_resource(ResourceArn=source_arn).get("Tags", [])}


def test_table_tags_are_served_and_evaluated_like_other_table_actions(masked_app, ddb_local):
    """TagResource/UntagResource/ListTagsOfResource as DynamoDB serves them: on a table ARN only, on an
    existing table, IAM-evaluated on the table ARN (the replicator's role may not read or change tags)."""
    from botocore.exceptions import ClientError

    with deploy(masked_app, ddb_local) as deployment:
        client = _gateway_client(deployment.gateway, "eu-west-1")
        arn = client.describe_table(TableName=TABLE)["Table"]["TableArn"]
        client.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"}])
        client.untag_resource(ResourceArn=arn, TagKeys=["cdk-replication:transform"])
        assert client.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "data"}]
        with pytest.raises(ClientError, match="ValidationException"):
            client.list_tags_of_resource(ResourceArn=TABLE)  # a name is no ARN
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            client.list_tags_of_resource(ResourceArn=arn.replace(TABLE, "NoSuchTable"))
        with pytest.raises(ClientError, match="aws:"):
            client.tag_resource(ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "x"}])
        (function,) = deployment.functions
        env = function._credentials_env  # the replicator role's keys
        role = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=deployment.gateway.endpoint_url,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=env.get("AWS_SESSION_TOKEN"))
        with pytest.raises(ClientError, match="AccessDenied"):
            role.tag_resource(ResourceArn=arn, Tags=[{"Key": "x", "Value": "y"}])


def _synth(out: Path, name: str, transform: ReplicaTransform | None) -> Path:
    app = cdk.App(outdir=str(out))
    ReplicatedTable(app, name, source=TableLocation(region="us-west-2", account=ACCOUNT),
                    replicas=[TableLocation(region="us-east-1", transform=transform)],
                    partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                    dashboard=False)
    app.synth()
    return out


def _cli(gateway: Gateway, *args: str) -> tuple[int, str]:
    """``cdk-replication ARGS`` in-process through the gateway (tables, tags, parameters, secret) as the
    account's root (the environment's keys); returns the exit code and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--endpoint-url", gateway.endpoint_url, "--quiet"], stdout=out, stderr=err)
    return code, err.getvalue() + out.getvalue()


def test_adding_a_mask_to_a_running_replica_leaves_no_raw_value_after_the_mandatory_rebuild(
        tmp_path, ddb_local, monkeypatch):
    """Rule 10 over time: a replica first deployed as an exact copy (or with a weaker transform) already
    holds raw values. Adding ``masks={"email": Mask.hmac()}`` updates the replicator and the tag, but the
    table is the same resource and only items that change afterwards are rewritten: an item nobody updates
    keeps its raw email in the target account (with a hashed key, a new hashed twin appears next to it).
    No automatic fix is sound at synth (the construct cannot see what was deployed before), so the rebuild is
    a documented, mandatory step (ReplicaTransform's docstring, docs/cli.md "Adding or changing a transform"):
    ``verify`` reports the stale items, and ``verify --repair`` rewrites every item whose transformed form
    differs (and deletes orphans under old keys), after which no raw value stays."""
    name = "Grow" + TABLE
    v1 = _synth(tmp_path / "v1", name, None)
    v2 = _synth(tmp_path / "v2", name, ReplicaTransform(masks={"email": Mask.hmac()}))
    creds = credentials_for_account(ACCOUNT)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                     "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    with deploy(v1, ddb_local) as deployment:
        source = deployment.table(name, region="us-west-2")
        source.client().put_item(TableName=name, Item={"pk": {"S": "quiet"}, "email": {"S": "quiet@example.com"}})
        deployment.run_until_idle()
        deployment.update(v2)
        source.client().put_item(TableName=name, Item={"pk": {"S": "busy"}, "email": {"S": "busy@example.com"}})
        deployment.run_until_idle()
        replica = deployment.table(name, region="us-east-1")

        def emails() -> set[str]:
            return {i["email"]["S"] for i in replica.client().scan(TableName=name)["Items"]}

        assert "busy@example.com" not in emails()  # the change after the update is masked...
        assert "quiet@example.com" in emails()  # ...the item copied before it is not: why the rebuild is mandatory
        tables = (f"us-west-2:{name}", f"us-east-1:{name}")
        code, output = _cli(deployment.gateway, "verify", *tables)
        assert code == 1, output  # verify sees the stale item (it compares the TRANSFORMED source)
        code, output = _cli(deployment.gateway, "verify", *tables, "--repair")
        assert code == 0, output
        assert not {"quiet@example.com", "busy@example.com"} & emails()
        assert _cli(deployment.gateway, "verify", *tables)[0] == 0
