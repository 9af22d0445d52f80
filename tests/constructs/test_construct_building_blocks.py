"""ReplicaTable and Replicator used one by one inside a user's own stacks."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from construct_helpers import PK, SOURCE_ACCOUNT, Synthesized, only_resource, role_statements, synth

from cdk_replication import KeySchema, ReplicaTable, ReplicationTarget, Replicator, ResolvedTable, TableOptions


def _build(app: cdk.App) -> Replicator:
    west = cdk.Stack(app, "AppWest", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
    east = cdk.Stack(app, "AppEast", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-east-1"))
    users = dynamodb.Table(
        west,
        "Users",
        table_name="users",
        partition_key=PK,
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
    )
    ReplicaTable(east, "UsersCopy", table_name="users", options=TableOptions(partition_key=PK))
    assert users.table_stream_arn is not None
    return Replicator(
        west,
        "UsersReplicator",
        source=ResolvedTable("users", "us-west-2", SOURCE_ACCOUNT),
        stream_arn=users.table_stream_arn,
        key=KeySchema("Id"),
        targets=[ReplicationTarget(ResolvedTable("users", "us-east-1", SOURCE_ACCOUNT))],
    )


def test_pieces_compose_in_user_stacks(tmp_path: Path) -> None:
    synthesized: Synthesized = synth(tmp_path, _build)
    assert synthesized.nag_error is None, synthesized.nag_report()
    west = synthesized.template_json("AppWest")
    env = only_resource(west, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert json.loads(env["REPLICATION_TARGETS"]) == [
        {"tableName": "users", "region": "us-east-1", "account": SOURCE_ACCOUNT}
    ]
    statements = {s["Sid"]: s for s in role_statements(west, "UsersReplicatorRole")}
    assert statements["ReadSourceStream"]["Resource"] == {
        "Fn::GetAtt": [next(k for k in west["Resources"] if k.startswith("Users")), "StreamArn"]
    }
    # Without a role_name the role's physical name is left to CloudFormation.
    assert "RoleName" not in only_resource(west, "AWS::IAM::Role")["Properties"]
    east = only_resource(synthesized.template_json("AppEast"), "AWS::DynamoDB::Table")
    assert east["Properties"]["TableName"] == "users"
    assert "StreamSpecification" not in east["Properties"]
    assert east["DeletionPolicy"] == "Retain"
