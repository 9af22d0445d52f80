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


def _synth(out: Path, name: str, transform: ReplicaTransform | None) -> Path:
    app = cdk.App(outdir=str(out))
    ReplicatedTable(app, name, source=TableLocation(region="us-west-2", account=ACCOUNT),
                    replicas=[TableLocation(region="us-east-1", transform=transform)],
                    partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                    dashboard=False)
    app.synth()
    return out


@pytest.mark.xfail(strict=True, reason="review: adding a transform to a deployed replica leaves every raw value "
                   "already copied there; nothing refuses, rebuilds or documents it")
def test_adding_a_mask_to_a_running_replica_leaves_no_raw_value(tmp_path, ddb_local):
    """Rule 10 over time: a replica first deployed as an exact copy (or with a weaker transform) already
    holds raw values. Adding ``masks={"email": Mask.hmac()}`` updates the replicator and the tag, but the
    table is the same resource and only items that change afterwards are rewritten: an item nobody updates
    keeps its raw email in the target account for ever (and with a hashed key, a new hashed twin appears
    next to the raw item). The construct accepts the change silently and docs/architecture.md says nothing
    about a rebuild (it does for a key rotation). Expected: refused without an explicit rebuild/replacement
    (e.g. a new replica table), or the replica rebuilt, so that no raw value stays."""
    name = "Grow" + TABLE
    v1 = _synth(tmp_path / "v1", name, None)
    v2 = _synth(tmp_path / "v2", name, ReplicaTransform(masks={"email": Mask.hmac()}))
    with deploy(v1, ddb_local) as deployment:
        source = deployment.table(name, region="us-west-2")
        source.client().put_item(TableName=name, Item={"pk": {"S": "quiet"}, "email": {"S": "quiet@example.com"}})
        deployment.run_until_idle()
        deployment.update(v2)
        source.client().put_item(TableName=name, Item={"pk": {"S": "busy"}, "email": {"S": "busy@example.com"}})
        deployment.run_until_idle()
        replica = deployment.table(name, region="us-east-1")
        emails = {i["email"]["S"] for i in replica.client().scan(TableName=name)["Items"]}
        assert "busy@example.com" not in emails  # the change after the update is masked...
        assert "quiet@example.com" not in emails  # fails: the raw email copied before the update stays
