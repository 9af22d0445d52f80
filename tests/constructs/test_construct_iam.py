"""IAM, pinned exactly: every role can do what its function does, on exactly its resources (rule 8)."""

from __future__ import annotations

from typing import Any

import pytest
from construct_helpers import (
    FOREIGN_KEY_ARN,
    IMPORTED_STREAM_ARN,
    REPLICA_KEY_ARN,
    SOURCE_KEY_ARN,
    OTHER_ACCOUNT,
    SOURCE_ACCOUNT,
    Synthesized,
    as_list,
    partition_arn,
    policy_statements,
    resources_of_type,
    role_statements,
)

#: One-way: coalesced BatchWriteItem, and Put/DeleteItem to isolate a record a whole batch was rejected for.
WRITE_ACTIONS = ["dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem"]
#: Multi-active: every write is a conditional PutItem.
MULTI_ACTIVE_WRITE_ACTIONS = "dynamodb:PutItem"
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
KMS_WRITE_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"]

#: The only statements allowed to use Resource "*": (Sid, actions) — each action has no IAM resource type.
ALLOWED_STAR = {("ListStreams", ("dynamodb:ListStreams",))}


def _normalize(statement: dict[str, Any]) -> tuple[Any, ...]:
    return (
        statement.get("Sid"),
        statement["Effect"],
        tuple(sorted(as_list(statement["Action"]))),
        tuple(str(r) for r in as_list(statement["Resource"])),
        str(statement.get("Condition")),
    )


def _ids(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    (logical_id,) = [k for k in resources_of_type(template, resource_type) if k.startswith(prefix)]
    return logical_id


def _failure_bucket_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Exactly what Lambda needs to write to the replicator's S3 failure destination (AWS Lambda developer
    guide: s3:PutObject and s3:ListBucket): PutObject under the key prefix Lambda writes (aws/lambda/<mapping
    UUID>/...), not on the whole bucket, where redrive keeps its markers (cdk-replication/redriven/...);
    ListBucket on the bucket."""
    bucket = {"Fn::GetAtt": [_ids(template, "AWS::S3::Bucket", "ReplicatorFailureBucket"), "Arn"]}
    return [
        {
            "Sid": "WriteFailureRecords",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Join": ["", [bucket, "/aws/lambda/*"]]},
        },
        {"Sid": "ListFailureBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket},
    ]


def _base_statements(template: dict[str, Any], stream: Any) -> list[dict[str, Any]]:
    """The statements every replicator role has: its stream, ListStreams, its log group, its failure bucket."""
    return [
        {"Sid": "ReadSourceStream", "Effect": "Allow", "Action": STREAM_ACTIONS, "Resource": stream},
        {"Sid": "ListStreams", "Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"},
        {
            "Sid": "WriteOwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [_ids(template, "AWS::Logs::LogGroup", "Replicator"), "Arn"]},
        },
        *_failure_bucket_statements(template),
    ]


def _assert_same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [_normalize(s) for s in actual] == [_normalize(s) for s in expected]


def test_one_way_replicator_role_exactly(one_way: Synthesized) -> None:
    template = one_way.template_json("Employee-us-west-2")
    stream = {"Fn::GetAtt": [_ids(template, "AWS::DynamoDB::Table", "SourceTable"), "StreamArn"]}
    expected = _base_statements(template, stream) + [
        {
            "Sid": "WriteTargetTables",
            "Effect": "Allow",
            "Action": WRITE_ACTIONS,
            "Resource": partition_arn(f":dynamodb:us-east-1:{SOURCE_ACCOUNT}:table/Employee"),
        }
    ]
    _assert_same(role_statements(template, "ReplicatorRole"), expected)


def test_multi_active_replicator_role_exactly(multi_active: Synthesized) -> None:
    """PutItem only, on the other copies in its own account and on its own table (tombstones, put-backs);
    the copy in another account is reached through that account's writer role."""
    template = multi_active.template_json("Profiles-us-west-2")
    stream = {"Fn::GetAtt": [_ids(template, "AWS::DynamoDB::Table", "SourceTable"), "StreamArn"]}
    expected = _base_statements(template, stream) + [
        {
            "Sid": "WriteTargetTables",
            "Effect": "Allow",
            "Action": MULTI_ACTIVE_WRITE_ACTIONS,
            "Resource": partition_arn(f":dynamodb:us-east-1:{SOURCE_ACCOUNT}:table/Profiles"),
        },
        {
            "Sid": "AssumeWriterRoles",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            # Role ARNs of other accounts are literal: the partition is known from the region.
            "Resource": f"arn:aws:iam::{OTHER_ACCOUNT}:role/Profiles-eu-west-1-writer-{SOURCE_ACCOUNT}-us-west-2",
        },
        {
            "Sid": "WriteOwnTable",
            "Effect": "Allow",
            "Action": MULTI_ACTIVE_WRITE_ACTIONS,
            "Resource": partition_arn(f":dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Profiles"),
        },
    ]
    _assert_same(role_statements(template, "ReplicatorRole"), expected)


def test_multi_active_writer_role_allows_put_item_only(multi_active: Synthesized) -> None:
    template = multi_active.template_json(f"Profiles-{OTHER_ACCOUNT}-eu-west-1")
    policies = [
        statement
        for logical_id, policy in resources_of_type(template, "AWS::IAM::Role").items()
        if "writer" in policy["Properties"].get("RoleName", "")
        for doc in policy["Properties"].get("Policies", [])
        for statement in doc["PolicyDocument"]["Statement"]
    ]
    assert policies, "the other account's stack has writer roles"
    for statement in policies:
        assert statement["Action"] == MULTI_ACTIVE_WRITE_ACTIONS
        assert statement["Resource"] == partition_arn(f":dynamodb:eu-west-1:{OTHER_ACCOUNT}:table/Profiles")


def test_replicator_role_trusts_only_lambda_has_deterministic_name_and_no_managed_policies(
    one_way: Synthesized,
) -> None:
    role = resources_of_type(one_way.template_json("Employee-us-west-2"), "AWS::IAM::Role")
    (props,) = [r["Properties"] for r in role.values()]
    assert props["RoleName"] == "Employee-us-west-2-replicator"
    assert "ManagedPolicyArns" not in props
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]


def test_imported_cmk_source_role_exactly(imported: Synthesized) -> None:
    template = imported.template_json("Orders-us-west-2")
    expected = _base_statements(template, IMPORTED_STREAM_ARN) + [
        {
            "Sid": "WriteTargetTables",
            "Effect": "Allow",
            "Action": WRITE_ACTIONS,
            "Resource": [
                partition_arn(f":dynamodb:us-east-1:{SOURCE_ACCOUNT}:table/Orders"),
                partition_arn(f":dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/OrdersAudit"),
            ],
        },
        {"Sid": "DecryptSourceStream", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": SOURCE_KEY_ARN},
        {
            "Sid": "UseTargetTableKeys",
            "Effect": "Allow",
            "Action": KMS_WRITE_ACTIONS,
            "Resource": [REPLICA_KEY_ARN, SOURCE_KEY_ARN],
        },
    ]
    _assert_same(role_statements(template, "ReplicatorRole"), expected)


def test_imported_source_is_not_created(imported: Synthesized) -> None:
    template = imported.template_json("Orders-us-west-2")
    tables = [r["Properties"]["TableName"] for r in resources_of_type(template, "AWS::DynamoDB::Table").values()]
    assert tables == ["OrdersAudit"], "only the same-region audit copy is created in the source's stack"


def test_cross_account_writer_role_trusts_exactly_the_replicator_role(cross_account: Synthesized) -> None:
    template = cross_account.template_json(f"Employee-{OTHER_ACCOUNT}-eu-west-1")
    roles = resources_of_type(template, "AWS::IAM::Role")
    assert len(roles) == 1
    props = next(iter(roles.values()))["Properties"]
    assert props["RoleName"] == f"Employee-eu-west-1-writer-{SOURCE_ACCOUNT}-us-west-2"
    assert "ManagedPolicyArns" not in props
    replicator_arn = partition_arn(f":iam::{SOURCE_ACCOUNT}:role/Employee-us-west-2-replicator")
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": replicator_arn}},
            "Effect": "Allow",
            "Principal": {"AWS": partition_arn(f":iam::{SOURCE_ACCOUNT}:root")},
        }
    ]
    _assert_same(
        props["Policies"][0]["PolicyDocument"]["Statement"],
        [
            {
                "Sid": "WriteReplicaTable",
                "Effect": "Allow",
                "Action": WRITE_ACTIONS,
                "Resource": partition_arn(f":dynamodb:eu-west-1:{OTHER_ACCOUNT}:table/Employee"),
            },
            {"Sid": "UseReplicaTableKey", "Effect": "Allow", "Action": KMS_WRITE_ACTIONS, "Resource": FOREIGN_KEY_ARN},
        ],
    )


def test_cross_account_replicator_may_only_assume_the_writer_role(cross_account: Synthesized) -> None:
    template = cross_account.template_json("Employee-us-west-2")
    stream = {"Fn::GetAtt": [_ids(template, "AWS::DynamoDB::Table", "SourceTable"), "StreamArn"]}
    writer_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:role/Employee-eu-west-1-writer-{SOURCE_ACCOUNT}-us-west-2"
    expected = _base_statements(template, stream) + [
        {"Sid": "AssumeWriterRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": writer_arn},
        {"Sid": "DecryptSourceStream", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": SOURCE_KEY_ARN},
    ]
    _assert_same(role_statements(template, "ReplicatorRole"), expected)
    (function,) = resources_of_type(template, "AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["REPLICATION_TARGETS"] == (
        f'[{{"account":"{OTHER_ACCOUNT}","region":"eu-west-1","roleArn":"{writer_arn}","tableName":"Employee"}}]'
    )


def test_resource_policy_names_only_the_replicator_role(resource_policy: Synthesized) -> None:
    replica = resource_policy.template_json(f"Employee-{OTHER_ACCOUNT}-eu-west-1")
    assert resources_of_type(replica, "AWS::IAM::Role") == {}
    (table,) = resources_of_type(replica, "AWS::DynamoDB::Table").values()
    replicator_arn = partition_arn(f":iam::{SOURCE_ACCOUNT}:role/Employee-us-west-2-replicator")
    _assert_same(
        table["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"],
        [
            {
                "Sid": "Replicator0",
                "Effect": "Allow",
                "Principal": {"AWS": partition_arn(f":iam::{SOURCE_ACCOUNT}:root")},
                "Condition": {"ArnEquals": {"aws:PrincipalArn": replicator_arn}},
                "Action": WRITE_ACTIONS,
                "Resource": partition_arn(f":dynamodb:eu-west-1:{OTHER_ACCOUNT}:table/Employee"),
            }
        ],
    )
    source = resource_policy.template_json("Employee-us-west-2")
    statements = {s["Sid"]: s for s in role_statements(source, "ReplicatorRole")}
    assert "AssumeWriterRoles" not in statements
    assert statements["WriteTargetTables"]["Resource"] == partition_arn(
        f":dynamodb:eu-west-1:{OTHER_ACCOUNT}:table/Employee"
    )
    (function,) = resources_of_type(source, "AWS::Lambda::Function").values()
    assert "roleArn" not in function["Properties"]["Environment"]["Variables"]["REPLICATION_TARGETS"]


def test_no_statement_allows_star_except_the_documented_ones(any_shape: Synthesized) -> None:
    offenders = []
    for stack in any_shape.stacks():
        template = any_shape.template_json(stack.stack_name)
        for logical_id, where, statement in policy_statements(template):
            if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
                continue
            key = (statement.get("Sid"), tuple(sorted(as_list(statement["Action"]))))
            if key not in ALLOWED_STAR:
                offenders.append((stack.stack_name, logical_id, where, statement))
    assert offenders == []


def test_every_role_is_written_by_hand(any_shape: Synthesized) -> None:
    """No AWS managed policies and no CDK default policies (grant helpers would add those)."""
    for stack in any_shape.stacks():
        template = any_shape.template_json(stack.stack_name)
        assert resources_of_type(template, "AWS::IAM::Policy") == {}, stack.stack_name
        for role in resources_of_type(template, "AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"], stack.stack_name


@pytest.mark.parametrize("shape", ["one_way", "multi_active", "migration_prepare", "migration_import"])
def test_allow_principals_are_never_wildcards(shape: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synthesized = request.getfixturevalue(shape)
    for stack in synthesized.stacks():
        for _, where, statement in policy_statements(synthesized.template_json(stack.stack_name)):
            if statement["Effect"] == "Allow" and "Principal" in statement:
                assert statement["Principal"] not in ("*", {"AWS": "*"}), (stack.stack_name, where)
