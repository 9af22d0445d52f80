"""SSM Parameter Store in the local runtime: the deploy creates ``AWS::SSM::Parameter`` resources, the gateway
serves them on SSM's API to boto3's ``ssm`` client, per account and region, with IAM evaluated on the parameter
ARN and AWS's errors (DESIGN.md rule 9: never kinder than AWS)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cdk_replication.local import DynamoDBLocal, Gateway, TemplateError, deploy
from cdk_replication.local.parameters import ParameterService, ParameterStore, parameter_arn

REGION, OTHER_REGION = "eu-west-1", "eu-central-1"
ACCOUNT, OTHER_ACCOUNT = "444444444444", "555555555555"
OPERATOR = f"arn:aws:iam::{ACCOUNT}:user/param-operator"


def _ssm(gateway: Gateway, key: str, region: str = REGION) -> Any:
    return boto3.client("ssm", endpoint_url=gateway.endpoint_url, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key="local")


@pytest.fixture
def served(ddb_local: DynamoDBLocal) -> Iterator[tuple[Gateway, ParameterStore]]:
    """A gateway serving a fresh parameter store."""
    store = ParameterStore()
    with Gateway(ddb_local) as gateway:
        gateway.add_service(ParameterService(store))
        yield gateway, store


def test_boto3_reads_and_writes_parameters_per_account_and_region(served):
    gateway, store = served
    root = _ssm(gateway, f"LOCAL{ACCOUNT}")
    assert root.put_parameter(Name="/app/status", Value="JOINING", Type="String")["Version"] == 1
    assert root.put_parameter(Name="/app/status", Value="ACTIVE", Type="String", Overwrite=True)["Version"] == 2
    parameter = root.get_parameter(Name="/app/status")["Parameter"]
    assert (parameter["Value"], parameter["Version"], parameter["ARN"]) == (
        "ACTIVE", 2, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/status")
    # By ARN too (the caller's own); GetParameters lists a missing name instead of failing.
    assert root.get_parameter(Name=parameter["ARN"])["Parameter"]["Value"] == "ACTIVE"
    answer = root.get_parameters(Names=["/app/status", "/app/missing"])
    assert [p["Value"] for p in answer["Parameters"]] == ["ACTIVE"]
    assert answer["InvalidParameters"] == ["/app/missing"]
    with pytest.raises(ClientError) as exists:
        root.put_parameter(Name="/app/status", Value="LEAVING", Type="String")
    assert exists.value.response["Error"]["Code"] == "ParameterAlreadyExists"
    # Another account and another region have their own namespaces.
    for other in (_ssm(gateway, f"LOCAL{OTHER_ACCOUNT}"), _ssm(gateway, f"LOCAL{ACCOUNT}", OTHER_REGION)):
        with pytest.raises(ClientError) as missing:
            other.get_parameter(Name="/app/status")
        assert missing.value.response["Error"]["Code"] == "ParameterNotFound"
    assert gateway.endpoint_env()["AWS_ENDPOINT_URL_SSM"] == gateway.endpoint_url


def test_a_missing_parameter_is_parameter_not_found(served):
    gateway, _ = served
    with pytest.raises(ClientError) as missing:
        _ssm(gateway, f"LOCAL{ACCOUNT}").get_parameter(Name="/cdk-replication/nothing/status")
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_read_the_policy_does_not_allow_is_denied_with_aws_message(served):
    gateway, store = served
    store.put("/cdk-replication/Orders/status", "ACTIVE", region=REGION, account=ACCOUNT)
    store.put("/cdk-replication/Secret/status", "ACTIVE", region=REGION, account=ACCOUNT)
    allowed = parameter_arn("/cdk-replication/Orders/status", REGION, ACCOUNT)
    creds = gateway.register_principal(OPERATOR, [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": allowed}]}])
    operator = _ssm(gateway, creds.access_key_id)
    assert operator.get_parameter(Name="/cdk-replication/Orders/status")["Parameter"]["Value"] == "ACTIVE"
    denied_arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cdk-replication/Secret/status"
    with pytest.raises(ClientError) as denied:
        operator.get_parameter(Name="/cdk-replication/Secret/status")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.value.response["Error"]["Message"] == (
        f"User: {OPERATOR} is not authorized to perform: ssm:GetParameter on resource: {denied_arn} because no "
        "identity-based policy allows the ssm:GetParameter action")
    # GetParameters is its own action, and one refused name fails the whole call; so is a write.
    with pytest.raises(ClientError) as batch:
        operator.get_parameters(Names=["/cdk-replication/Orders/status"])
    assert batch.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as write:
        operator.put_parameter(Name="/cdk-replication/Orders/status", Value="LEAVING", Overwrite=True)
    assert write.value.response["Error"]["Code"] == "AccessDeniedException"
    # A missing parameter the policy does not cover is a denial, not a hint that it does not exist.
    with pytest.raises(ClientError) as hidden:
        operator.get_parameter(Name="/cdk-replication/Nothing/status")
    assert hidden.value.response["Error"]["Code"] == "AccessDeniedException"
    assert gateway.stats.denied == 4


def test_a_request_signed_for_another_service_is_refused(served):
    gateway, _ = served
    ssm = boto3.client("ssm", endpoint_url=gateway.endpoint_url, region_name=REGION,
                       aws_access_key_id=f"LOCAL{ACCOUNT}", aws_secret_access_key="local")
    ssm.meta.events.register("before-sign.ssm.*", lambda request, **_: request.context.update(
        {"signing": {"signing_name": "dynamodb"}}))
    with pytest.raises(ClientError) as wrong:
        ssm.get_parameter(Name="/x")
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"


def _assembly(tmp: Path, parameter: dict[str, Any]) -> tuple[Path, str]:
    name = f"prm-{uuid.uuid4().hex[:8]}"
    resources = {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}},
        "Status": {"Type": "AWS::SSM::Parameter", "Properties": parameter},
    }
    template = {"Resources": resources, "Outputs": {"Name": {"Value": {"Ref": "Status"}}}}
    (tmp / "stack.template.json").write_text(json.dumps(template).replace("NAME", name))
    (tmp / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {name: {
        "type": "aws:cloudformation:stack", "environment": f"aws://{ACCOUNT}/{REGION}",
        "properties": {"templateFile": "stack.template.json", "stackName": name}}}}))
    return tmp, name


def test_deploy_creates_parameters_with_intrinsics_resolved(tmp_path, ddb_local):
    out, name = _assembly(tmp_path, {"Name": "/cdk-replication/NAME/replicator", "Type": "String", "Value": {
        "Fn::Join": ["", ['{"source":"', {"Fn::GetAtt": ["Table", "Arn"]}, '"}']]}})
    with deploy(out, ddb_local) as deployment:
        expected = json.dumps({"source": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}, separators=(",", ":"))
        assert deployment.parameter(f"/cdk-replication/{name}/replicator", REGION, ACCOUNT) == expected
        assert deployment.stacks[0].outputs["Name"] == f"/cdk-replication/{name}/replicator"
        read = _ssm(deployment.gateway, f"LOCAL{ACCOUNT}").get_parameter(Name=f"/cdk-replication/{name}/replicator")
        assert read["Parameter"]["Value"] == expected
        with pytest.raises(KeyError, match="no SSM parameter"):
            deployment.parameter(f"/cdk-replication/{name}/replicator", OTHER_REGION, ACCOUNT)


def test_deploy_refuses_parameters_it_cannot_serve(tmp_path, ddb_local):
    out, _ = _assembly(tmp_path, {"Name": "/x/NAME", "Type": "String", "Value": "v", "Tier": "Advanced"})
    with pytest.raises(TemplateError, match="only standard parameters"):
        deploy(out, ddb_local)
