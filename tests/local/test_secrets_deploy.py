"""A masked replica deployed on the local runtime: the deploy generates the HMAC secret, the replicator reads it
through the gateway with its role (the one permission the construct grants) and writes the transformed items;
without that permission the masked target's records fail (and are kept), as on AWS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import Filter, Mask, ReplicatedTable, ReplicaTransform, TableLocation
from cdk_replication._lambda.replicator.transform import Transform
from cdk_replication.local import deploy

ACCOUNT = "666666666666"
TABLE = "MaskedPeople"


@pytest.fixture(scope="module")
def masked_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source in us-east-1 and a filtered, projected, masked replica in eu-west-1 (one synthesis)."""
    outdir = tmp_path_factory.mktemp("masked-app")
    app = cdk.App(outdir=str(outdir))
    ReplicatedTable(
        app, TABLE,
        source=TableLocation(region="us-east-1", account=ACCOUNT),
        replicas=[TableLocation(region="eu-west-1", transform=ReplicaTransform(
            filter=Filter.eq("status", "active"), drop=["address"],
            masks={"pk": Mask.hmac(), "email": Mask.hmac()}))],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        dashboard=False,
    )
    app.synth()
    return outdir


def _without_secret_permission(cdk_out: Path, into: Path) -> Path:
    """A copy of the assembly whose replicator role lacks ``ReadTransformSecret``."""
    copy = Path(shutil.copytree(cdk_out, into / "cdk.out"))
    removed = 0
    for template_path in copy.glob("*.template.json"):
        template = json.loads(template_path.read_text())
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for policy in resource["Properties"].get("Policies", []):
                statements = policy["PolicyDocument"]["Statement"]
                kept = [s for s in statements if s.get("Sid") != "ReadTransformSecret"]
                removed += len(statements) - len(kept)
                policy["PolicyDocument"]["Statement"] = kept
        template_path.write_text(json.dumps(template))
    assert removed == 1
    return copy


def _replicator(deployment: Any) -> Any:
    (function,) = [f for f in deployment.functions if "REPLICATION_SOURCE" in f.environment]
    return function


def test_the_replicator_reads_the_generated_secret_and_writes_the_masked_copy(masked_app, ddb_local):
    with deploy(masked_app, ddb_local) as deployment:
        secret = deployment.secrets.get(f"cdk-replication/{TABLE}/hmac-key", region="us-east-1", account=ACCOUNT)
        assert secret is not None and len(secret.value) == 64 and secret.value.isalnum()
        function = _replicator(deployment)
        assert function.container_environment()["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == deployment.gateway.endpoint_url
        source = deployment.table(TABLE, "us-east-1", ACCOUNT)
        replica = deployment.table(TABLE, "eu-west-1", ACCOUNT)
        client = source.client()
        client.put_item(TableName=TABLE, Item={"pk": {"S": "p1"}, "status": {"S": "active"},
                                               "email": {"S": "a@example.com"}, "address": {"S": "1 Road"}})
        client.put_item(TableName=TABLE, Item={"pk": {"S": "p2"}, "status": {"S": "gone"}})
        deployment.run_until_idle(timeout_s=120)
        (target,) = json.loads(function.environment["REPLICATION_TARGETS"])
        expected = Transform.from_spec(target["transform"], secret.value.encode(), ["pk"]).apply(
            client.get_item(TableName=TABLE, Key={"pk": {"S": "p1"}})["Item"])
        items = replica.client().scan(TableName=TABLE)["Items"]
        assert items == [expected]
        assert "a@example.com" not in json.dumps(items) and "address" not in items[0]


def test_without_the_permission_only_the_masked_target_fails_and_its_records_are_kept(masked_app, ddb_local,
                                                                                      tmp_path):
    """The gateway refuses GetSecretValue as AWS would; the replicator starts anyway (an exact copy beside the
    masked one must keep moving, rule 6), reports the masked target's records as failed (``HmacKeyUnavailable``)
    and Lambda hands them to the failure destination: nothing reaches the replica, nothing is lost."""
    with deploy(_without_secret_permission(masked_app, tmp_path), ddb_local) as deployment:
        source = deployment.table(TABLE, "us-east-1", ACCOUNT)
        replica = deployment.table(TABLE, "eu-west-1", ACCOUNT)
        held = replica.client().scan(TableName=TABLE)["Items"]  # the tables outlive a deployment: earlier tests'
        source.client().put_item(TableName=TABLE, Item={"pk": {"S": "p9"}, "status": {"S": "active"},
                                                        "email": {"S": "z@example.com"}})
        deployment.run_until_idle(timeout_s=120)
        assert replica.client().scan(TableName=TABLE)["Items"] == held
        assert "HmacKeyUnavailable" in "".join(_replicator(deployment).logs())
        assert any(bucket.failure_records() for bucket in deployment.buckets)
        assert any("secretsmanager:GetSecretValue" in denial for denial in deployment.gateway.stats.denials)
