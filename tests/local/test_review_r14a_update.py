"""Adversarial review of the local deploy and ``LocalDeployment.update`` (branch r14a): what CloudFormation refuses
or removes that the local runtime keeps serving (DESIGN.md rule 9). Each finding was xfail(strict) until fixed (all fixed now);
the other tests here hold what was checked and found sound.

The assemblies are written by hand (no synth), with test_update's helpers.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cdk_replication.local import DynamoDBLocal, TemplateError, deploy
from cdk_replication.local.bucket import BucketAccessDenied
from cdk_replication.local.deploy import LocalDeployment
from test_update import ACCOUNT, LAMBDA_TRUST, REGION, _assembly, _stack, _table

#: What a session of a role that no longer exists may get back: never an answer.
REFUSED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"}


def _parameter(name: str, value: str) -> dict[str, Any]:
    return {"Type": "AWS::SSM::Parameter", "Properties": {"Name": name, "Type": "String", "Value": value}}


def _reader_role(role_name: str, parameter_name: str, *, allowed: bool = True) -> dict[str, Any]:
    """A Lambda role whose inline policy allows ``ssm:GetParameter`` on one parameter (or, not ``allowed``, an
    unrelated action only)."""
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter_name}"
    statement = {"Effect": "Allow", "Action": "ssm:GetParameter" if allowed else "ssm:DescribeParameters",
                 "Resource": arn if allowed else "*"}
    return {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": role_name, "AssumeRolePolicyDocument": LAMBDA_TRUST,
        "Policies": [{"PolicyName": "read", "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]}}]}}


def _ssm(deployment: LocalDeployment, access_key: str) -> Any:
    return boto3.client("ssm", endpoint_url=deployment.gateway.endpoint_url, region_name=REGION,
                        aws_access_key_id=access_key, aws_secret_access_key="local")


def test_creating_a_parameter_whose_name_exists_fails_the_deploy(tmp_path, ddb_local: DynamoDBLocal):
    name = f"/review/{uuid.uuid4().hex[:8]}/replicator"
    out = _assembly(tmp_path / "out", {"First": {"Resources": {"P": _parameter(name, "from First")}},
                                       "Second": {"Resources": {"P": _parameter(name, "from Second")}}})
    # Locally the second stack silently takes the first one's parameter over (version 2, "from Second").
    with pytest.raises(TemplateError, match="already exists"):
        deploy(out, ddb_local).close()


def _read_after_update(tmp_path: Path, ddb_local: DynamoDBLocal, role_in_v2: dict[str, Any] | None) -> ClientError:
    """A role session reads a parameter (allowed), the update replaces the role with ``role_in_v2`` (``None``:
    removes it); the same session's next read must be refused. Returns the refusal."""
    uid = uuid.uuid4().hex[:8]
    name, role_name = f"/review/{uid}/status", f"review-{uid}-role"
    resources = {"Param": _parameter(name, "ACTIVE")}
    v1 = _assembly(tmp_path / "v1", {f"review-{uid}": {"Resources": {**resources, "Role": _reader_role(role_name, name)}}})
    v2_role = {} if role_in_v2 is None else {"Role": {**role_in_v2, "Properties": {
        **role_in_v2["Properties"], "RoleName": role_name}}}
    v2 = _assembly(tmp_path / "v2", {f"review-{uid}": {"Resources": {**resources, **v2_role}}})
    with deploy(v1, ddb_local) as deployment:
        session = deployment.gateway.credentials_for_role(f"arn:aws:iam::{ACCOUNT}:role/{role_name}", "replicator")
        assert _ssm(deployment, session.access_key_id).get_parameter(Name=name)["Parameter"]["Value"] == "ACTIVE"
        deployment.update(v2)
        with pytest.raises(ClientError) as refused:
            _ssm(deployment, session.access_key_id).get_parameter(Name=name)
        return refused.value


def test_a_role_removed_by_an_update_no_longer_authorizes_its_sessions(tmp_path, ddb_local: DynamoDBLocal):
    assert _read_after_update(tmp_path, ddb_local, None).response["Error"]["Code"] in REFUSED


def test_a_permission_removed_by_an_update_is_refused_afterwards(tmp_path, ddb_local: DynamoDBLocal):
    """Sound: a role kept by the update but losing a statement is refused at once (same session)."""
    without_read = _reader_role("replaced", "/unused", allowed=False)
    assert _read_after_update(tmp_path, ddb_local, without_read).response["Error"]["Code"] == "AccessDeniedException"


OTHER_ACCOUNT = "999999999999"


def _table_with_policy(name: str, reader_arn: str | None) -> dict[str, Any]:
    """A table; with ``reader_arn``, a resource policy letting that principal (of another account) GetItem."""
    props: dict[str, Any] = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    if reader_arn is not None:
        props["ResourcePolicy"] = {"PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "dynamodb:GetItem",
             "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}]}}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "Properties": props}


def test_a_resource_policy_removed_by_an_update_no_longer_lets_another_account_in(tmp_path, ddb_local: DynamoDBLocal):
    uid = uuid.uuid4().hex[:8]
    table, reader = f"review-{uid}", f"arn:aws:iam::{OTHER_ACCOUNT}:user/review-{uid}-reader"
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    v1 = _assembly(tmp_path / "v1", {f"review-{uid}": {"Resources": {"T": _table_with_policy(table, reader)}}})
    v2 = _assembly(tmp_path / "v2", {f"review-{uid}": {"Resources": {"T": _table_with_policy(table, None)}}})
    with deploy(v1, ddb_local) as deployment:
        creds = deployment.gateway.register_principal(reader, [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table_arn}]}])
        client = boto3.client("dynamodb", endpoint_url=deployment.gateway.endpoint_url, region_name=REGION,
                              aws_access_key_id=creds.access_key_id, aws_secret_access_key="local")
        assert "Item" not in client.get_item(TableName=table_arn, Key={"pk": {"S": "x"}})  # allowed, empty
        deployment.update(v2)
        with pytest.raises(ClientError) as refused:
            client.get_item(TableName=table_arn, Key={"pk": {"S": "x"}})
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


def _replicating_stack(name: str, version: str, starting_position: str) -> dict[str, Any]:
    """test_update's stack (source, sink, function writing "<key>#<version>", mapping) with this starting
    position."""
    stack = _stack(name, version, with_extras=False)
    stack["Resources"]["Mapping"]["Properties"]["StartingPosition"] = starting_position
    return stack


def test_a_changed_starting_position_replaces_the_mapping(tmp_path, ddb_local: DynamoDBLocal):
    name = f"review-{uuid.uuid4().hex[:8]}"
    v1 = _assembly(tmp_path / "v1", {name: _replicating_stack(name, "v1", "LATEST")})
    v2 = _assembly(tmp_path / "v2", {name: _replicating_stack(name, "v2", "TRIM_HORIZON")})
    with deploy(v1, ddb_local) as deployment:
        deployment.table(f"{name}-source").client().put_item(TableName=f"{name}-source", Item={"pk": {"S": "a"}})
        deployment.run_until_idle()
        deployment.update(v2)
        deployment.run_until_idle()
        sink = deployment.table(f"{name}-sink").client().scan(TableName=f"{name}-sink")["Items"]
        # On AWS the replacement mapping starts at TRIM_HORIZON and delivers "a" again, now with v2.
        assert {item["pk"]["S"] for item in sink} == {"a#v1", "a#v2"}


def test_adding_back_a_retained_table_fails_as_on_cloudformation(tmp_path, ddb_local: DynamoDBLocal):
    uid = uuid.uuid4().hex[:8]
    table = f"review-{uid}-replica"
    with_table = {f"review-{uid}": {"Resources": {"Param": _parameter(f"/review/{uid}/p", "x"),
                                                   "Replica": {**_table(table), "DeletionPolicy": "Retain"}}}}
    without = {f"review-{uid}": {"Resources": {"Param": _parameter(f"/review/{uid}/p", "x")}}}
    v1, v2, v3 = (_assembly(tmp_path / v, stacks) for v, stacks in (("v1", with_table), ("v2", without),
                                                                   ("v3", with_table)))
    with deploy(v1, ddb_local) as deployment:
        deployment.table(table).client().put_item(TableName=table, Item={"pk": {"S": "stale"}})
        deployment.update(v2)  # removed from the template: retained, with its item
        # Added back (a region or replica re-joining): the retained table is in the way on AWS.
        with pytest.raises(TemplateError, match="already exists"):
            deployment.update(v3)


def _bucket_stack(bucket: str, role_name: str, *, with_policy: bool, with_role: bool = True) -> dict[str, Any]:
    """A bucket, a Lambda role without any s3 permission of its own and, ``with_policy``, a bucket policy letting
    that role ``s3:PutObject``."""
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
    resources: dict[str, Any] = {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket}}}
    if with_role:
        resources["Role"] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": role_name, "AssumeRolePolicyDocument": LAMBDA_TRUST}}
    if with_policy:
        resources["Policy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": bucket, "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": role_arn},
                                                    "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}}}
    return {"Resources": resources}


@pytest.mark.parametrize("removed", ["bucket policy", "role"])
def test_a_bucket_policy_or_role_removed_by_an_update_no_longer_lets_the_role_write(
        tmp_path, ddb_local: DynamoDBLocal, removed: str):
    """Fixed with the finding above: a dropped ``AWS::S3::BucketPolicy`` is removed from its kept bucket, and a
    role the update deleted is not evaluated as "no known writer" (allowed) but refused."""
    uid = uuid.uuid4().hex[:8]
    bucket, role_name = f"review-{uid}-failures", f"review-{uid}-role"
    v1 = _assembly(tmp_path / "v1", {f"review-{uid}": _bucket_stack(bucket, role_name, with_policy=True)})
    v2 = _assembly(tmp_path / "v2", {f"review-{uid}": _bucket_stack(
        bucket, role_name, with_policy=removed == "role", with_role=removed != "role")})
    with deploy(v1, ddb_local, bucket_root=tmp_path / "buckets") as deployment:
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
        deployment.bucket(bucket).put_object("before", b"x", principal_arn=role_arn)  # allowed by the policy
        deployment.update(v2)
        with pytest.raises(BucketAccessDenied):
            deployment.bucket(bucket).put_object("after", b"x", principal_arn=role_arn)
