"""``LocalDeployment.update`` with the constructs: adding a JOINING replica to a running one-way ``ReplicatedTable``
creates its stack, changes the replicator's targets for the changes made after the update (nothing written
before is replayed to the new replica: ``cdk-replication join`` copies that), and publishes the new statuses and
targets in SSM, readable with boto3 through the gateway."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aws_cdk as cdk
import boto3
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import LocationStatus, ReplicatedTable, TableLocation
from cdk_replication.local import DynamoDBLocal, deploy

ACCOUNT = "777777777777"
PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def _synth(out: Path, name: str, replicas: list[TableLocation]) -> Path:
    app = cdk.App(outdir=str(out))
    ReplicatedTable(app, name, source=TableLocation(region="us-west-2", account=ACCOUNT), replicas=replicas,
                    partition_key=PK, dashboard=False)
    app.synth()
    return out


def test_a_joining_replica_added_to_a_running_table_gets_only_the_changes_made_after(tmp_path, ddb_local: DynamoDBLocal):
    name = f"Upd{uuid.uuid4().hex[:8]}"
    v1 = _synth(tmp_path / "v1", name, [TableLocation(region="us-east-1")])
    v2 = _synth(tmp_path / "v2", name, [TableLocation(region="us-east-1"),
                                        TableLocation(region="eu-west-1", status=LocationStatus.JOINING)])
    with deploy(v1, ddb_local) as deployment:
        source = deployment.table(name, region="us-west-2")
        source.client().put_item(TableName=name, Item={"pk": {"S": "before"}})
        deployment.run_until_idle()
        deployment.update(v2)
        source.client().put_item(TableName=name, Item={"pk": {"S": "after"}})
        deployment.run_until_idle()

        def keys(region: str) -> set[str]:
            table = deployment.table(name, region=region)
            return {item["pk"]["S"] for item in table.client().scan(TableName=name)["Items"]}

        assert keys("us-east-1") == {"before", "after"}
        assert keys("eu-west-1") == {"after"}  # "before" is for `cdk-replication join` to copy
        ssm = boto3.client("ssm", endpoint_url=deployment.gateway.endpoint_url, region_name="us-west-2",
                           aws_access_key_id=f"LOCAL{ACCOUNT}", aws_secret_access_key="local")
        document = json.loads(ssm.get_parameter(Name=f"/cdk-replication/{name}/replicator")["Parameter"]["Value"])
        assert [(t["table"].split(":")[3], t["status"]) for t in document["targets"]] == [
            ("us-east-1", "ACTIVE"), ("eu-west-1", "JOINING")]
        assert deployment.parameter(f"/cdk-replication/{name}/status", "eu-west-1", ACCOUNT) == "JOINING"
