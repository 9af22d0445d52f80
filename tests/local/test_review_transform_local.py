"""Adversarial review of the local runtime's side of replica transforms (issue 15, rule 9): each test states
what AWS does and is marked ``xfail(strict=True)`` while the local runtime differs (review r15a)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import Mask, ReplicatedTable, ReplicaTransform, TableLocation
from cdk_replication.local import deploy

ACCOUNT, TABLE = "888888888888", "TaggedPeople"


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


@pytest.mark.xfail(strict=True, reason="review: the local deploy drops the replica table's Tags, so the "
                   "cdk-replication:transform safety net the CLI checks does not exist locally")
def test_the_transformed_replica_carries_its_digest_tag_locally(masked_app, ddb_local):
    """Contract C's safety net: the CLI refuses to write into a table tagged ``cdk-replication:transform``
    unless it applies the published spec with that digest. On AWS, CloudFormation creates the replica with
    its template ``Tags``; the local deploy creates tables without them, so locally every replica looks
    untransformed: a CLI path that forgot the transform would write raw values into a masked replica and pass
    every local test, and only AWS would refuse it (rule 9: never kinder than AWS)."""
    with deploy(masked_app, ddb_local) as deployment:
        replica = deployment.table(TABLE, "eu-west-1", ACCOUNT)
        client = replica.client()
        arn = client.describe_table(TableName=TABLE)["Table"]["TableArn"]
        tags = {t["Key"]: t["Value"] for t in client.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}
        assert "cdk-replication:transform" in tags  # fails: {}
