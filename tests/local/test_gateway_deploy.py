"""What the local deploy checks of a function's role, as Lambda's CreateFunction and CreateEventSourceMapping
do on AWS (DESIGN.md rule 9): the role's trust policy lets Lambda assume it, its policies reach the stream
(``ListStreams`` on ``*``, the only resource IAM accepts for it), and every policy in the assembly attaches to a
role the deployment knows (``AWS::IAM::Policy`` and ``AWS::IAM::RolePolicy`` alike).

The assemblies are written by hand (a table with a stream, a role, an inline-code function and its mapping), so
these tests need no CDK synth."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local import TemplateError, deploy

ACCOUNT, REGION = "333333333333", "us-east-1"
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
STREAM = {"Fn::GetAtt": ["Table", "StreamArn"]}
READ_STREAM = {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                             "dynamodb:GetShardIterator"], "Resource": STREAM}
LIST_STREAMS = {"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _assembly(tmp: Path, *, trust: dict[str, Any] = LAMBDA_TRUST,
              statements: tuple[dict[str, Any], ...] = (READ_STREAM, LIST_STREAMS),
              extra: dict[str, Any] | None = None) -> Path:
    """A one-stack assembly in ``tmp``: table (with stream), role, function, mapping, and ``extra`` resources."""
    name = f"gwd-{uuid.uuid4().hex[:8]}"
    role: dict[str, Any] = {"RoleName": f"{name}-role", "AssumeRolePolicyDocument": trust}
    if statements:
        role["Policies"] = [{"PolicyName": "stream", "PolicyDocument": _doc(*statements)}]
    resources = {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": role},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": f"{name}-fn", "Runtime": "python3.12", "Handler": "index.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Ref": "Fn"}, "EventSourceArn": STREAM, "StartingPosition": "TRIM_HORIZON"}},
        **(extra or {}),
    }
    (tmp / "stack.template.json").write_text(json.dumps({"Resources": resources}))
    (tmp / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {name: {
        "type": "aws:cloudformation:stack", "environment": f"aws://{ACCOUNT}/{REGION}",
        "properties": {"templateFile": "stack.template.json", "stackName": name}}}}))
    return tmp


def test_a_role_with_the_stream_permissions_deploys(tmp_path, ddb_local):
    with deploy(_assembly(tmp_path), ddb_local) as deployment:
        assert len(deployment.mappings) == 1


def test_list_streams_granted_on_the_stream_only_fails_the_deploy(tmp_path, ddb_local):
    # IAM has no resource type for ListStreams: a grant on the stream ARN never matches on AWS.
    on_stream = {**LIST_STREAMS, "Resource": STREAM}
    with pytest.raises(TemplateError, match="Cannot access stream") as info:
        deploy(_assembly(tmp_path, statements=(READ_STREAM, on_stream)), ddb_local)
    assert "dynamodb:ListStreams" in str(info.value)


@pytest.mark.parametrize("trust", [
    _doc({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}),
    _doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}),
    _doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:TagSession"}),
    _doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
         {"Effect": "Deny", "Principal": "*", "Action": "sts:*"}),
], ids=["other-service", "account", "other-action", "denied"])
def test_a_role_lambda_cannot_assume_fails_the_deploy(tmp_path, ddb_local, trust):
    with pytest.raises(TemplateError, match="The role defined for the function cannot be assumed by Lambda") as info:
        deploy(_assembly(tmp_path, trust=trust), ddb_local)
    assert "Fn" in str(info.value)


def test_a_policy_for_a_role_the_assembly_does_not_know_fails_the_deploy(tmp_path, ddb_local):
    extra = {"Orphan": {"Type": "AWS::IAM::Policy", "Properties": {
        "PolicyName": "orphan", "Roles": ["not-in-the-assembly"],
        "PolicyDocument": _doc({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"})}}}
    with pytest.raises(TemplateError, match="not-in-the-assembly") as info:
        deploy(_assembly(tmp_path, extra=extra), ddb_local)
    assert "Orphan" in str(info.value)


def test_a_role_policy_attaches_like_a_policy(tmp_path, ddb_local):
    # The role's own policies grant nothing; an AWS::IAM::RolePolicy grants the stream.
    extra = {"StreamAccess": {"Type": "AWS::IAM::RolePolicy", "Properties": {
        "PolicyName": "stream", "RoleName": {"Ref": "Role"}, "PolicyDocument": _doc(READ_STREAM, LIST_STREAMS)}}}
    with deploy(_assembly(tmp_path, statements=(), extra=extra), ddb_local) as deployment:
        assert len(deployment.mappings) == 1
