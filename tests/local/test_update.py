"""``LocalDeployment.update``: a changed assembly deployed over a running deployment the way CloudFormation and
Lambda apply it (contract A.5), not as "close and deploy again": a kept mapping keeps its checkpoints (nothing is
replayed from TRIM_HORIZON), a changed function environment applies to the invocations that start after the
update while the one in flight finishes with the old one, removed functions and mappings stop, removed tables
follow their DeletionPolicy, parameters are updated (only when changed), new stacks are created.

The assemblies are written by hand (inline-code functions), so these tests need no CDK synth."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local import DynamoDBLocal, LocalDeployment, deploy

ACCOUNT, REGION = "666666666666", "eu-west-1"
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
#: Writes "<key>#<VERSION>" into SINK for each record; a "slow..." key first writes "<key>#started#<VERSION>"
#: and then takes a while, so a test can update the function while that invocation is in flight.
CODE = """
import os, time, boto3
ddb = boto3.client("dynamodb")
def handler(event, context):
    version = os.environ["VERSION"]
    for record in event["Records"]:
        key = record["dynamodb"]["Keys"]["pk"]["S"]
        if key.startswith("slow"):
            ddb.put_item(TableName=os.environ["SINK"], Item={"pk": {"S": key + "#started#" + version}})
            time.sleep(1.5)
        ddb.put_item(TableName=os.environ["SINK"], Item={"pk": {"S": key + "#" + version}})
"""
FAST = dataclasses.replace  # settings_override: poll quickly in background mode


def _table(name: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    if stream:
        props["StreamSpecification"] = {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    return {"Type": "AWS::DynamoDB::Table", "Properties": props, **extra}


def _function(name: str, version: str, sink: str) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": name, "Runtime": "python3.12", "Handler": "index.handler", "Timeout": 10,
        "Code": {"ZipFile": CODE}, "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Environment": {"Variables": {"VERSION": version, "SINK": sink}}}}


def _mapping(function: str) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
        "FunctionName": {"Ref": function}, "EventSourceArn": {"Fn::GetAtt": ["Source", "StreamArn"]},
        "StartingPosition": "TRIM_HORIZON", "BatchSize": 1}}


def _stack(name: str, version: str, *, with_extras: bool) -> dict[str, Any]:
    """The stack under test: source table, sink table, role, function + mapping, SSM parameters; with
    ``with_extras`` also a second function + mapping and two tables that the next version removes."""
    sink_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}-sink"
    statements = [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
         "Resource": {"Fn::GetAtt": ["Source", "StreamArn"]}},
        {"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"},
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": sink_arn},
    ]
    resources: dict[str, Any] = {
        "Source": _table(f"{name}-source", stream=True),
        "Sink": _table(f"{name}-sink"),
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": f"{name}-role", "AssumeRolePolicyDocument": LAMBDA_TRUST,
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]}},
        "Fn": _function(f"{name}-fn", version, f"{name}-sink"),
        "Mapping": _mapping("Fn"),
        "Config": {"Type": "AWS::SSM::Parameter", "DependsOn": ["Fn", "Mapping"], "Properties": {
            "Name": f"/upd/{name}/config", "Type": "String", "Value": version}},
        "Static": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": f"/upd/{name}/static", "Type": "String", "Value": "same"}},
    }
    if with_extras:
        resources.update({
            "Fn2": _function(f"{name}-fn2", "fn2", f"{name}-sink"),
            "Mapping2": _mapping("Fn2"),
            "Kept": _table(f"{name}-retained", DeletionPolicy="Retain"),
            "Gone": _table(f"{name}-deleted"),
            "Gone2": {"Type": "AWS::SSM::Parameter", "Properties": {
                "Name": f"/upd/{name}/gone", "Type": "String", "Value": "x"}},
        })
    return {"Resources": resources}


def _assembly(folder: Path, stacks: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    artifacts = {}
    for stack_name, template in stacks.items():
        (folder / f"{stack_name}.template.json").write_text(json.dumps(template))
        artifacts[stack_name] = {"type": "aws:cloudformation:stack", "environment": f"aws://{ACCOUNT}/{REGION}",
                                 "properties": {"templateFile": f"{stack_name}.template.json", "stackName": stack_name}}
    (folder / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": artifacts}))
    return folder


def _versions(tmp: Path) -> tuple[str, Path, Path]:
    """(name, v1 assembly, v2 assembly): v2 changes the function's VERSION and the Config parameter, removes
    the extras, and adds a stack with a new table."""
    name = f"upd-{uuid.uuid4().hex[:8]}"
    v1 = _assembly(tmp / "v1", {name: _stack(name, "v1", with_extras=True)})
    v2 = _assembly(tmp / "v2", {name: _stack(name, "v2", with_extras=False),
                                f"{name}-new": {"Resources": {"Added": _table(f"{name}-added")}}})
    return name, v1, v2


def _sink(deployment: LocalDeployment, name: str) -> set[str]:
    items = deployment.table(f"{name}-sink").client().scan(TableName=f"{name}-sink")["Items"]
    return {item["pk"]["S"] for item in items}


def _put(deployment: LocalDeployment, name: str, *keys: str) -> None:
    client = deployment.table(f"{name}-source").client()
    for key in keys:
        client.put_item(TableName=f"{name}-source", Item={"pk": {"S": key}})


def _wait_for(deployment: LocalDeployment, name: str, key: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while key not in _sink(deployment, name):
        assert time.monotonic() < deadline, f"{key} never reached the sink: {sorted(_sink(deployment, name))}"
        time.sleep(0.05)


def test_an_update_keeps_checkpoints_applies_changes_and_removes_what_is_gone(tmp_path, ddb_local: DynamoDBLocal):
    name, v1, v2 = _versions(tmp_path)
    with deploy(v1, ddb_local) as deployment:
        _put(deployment, name, "a", "b")
        deployment.run_until_idle()
        assert _sink(deployment, name) == {"a#v1", "b#v1", "a#fn2", "b#fn2"}
        mapping, function = deployment.mapping_for(f"{name}-fn"), deployment.function(f"{name}-fn")
        removed_mapping = deployment.mapping_for(f"{name}-fn2")

        deployment.update(v2)

        _put(deployment, name, "c")
        deployment.run_until_idle()
        # The mapping kept its checkpoints: a and b are not replayed (with v2), c is delivered with v2.
        assert _sink(deployment, name) == {"a#v1", "b#v1", "a#fn2", "b#fn2", "c#v2"}
        assert deployment.function(f"{name}-fn") is function and deployment.mapping_for(function) is mapping
        # The removed function and mapping are gone and got nothing more.
        assert f"{name}-fn2" not in [f.name for f in deployment.functions]
        assert removed_mapping not in deployment.mappings and removed_mapping.stats.records_delivered == 2
        # Parameters: the changed one updated, the unchanged one untouched, the removed one deleted.
        assert deployment.parameter(f"/upd/{name}/config", REGION, ACCOUNT) == "v2"
        store = deployment.parameters
        assert store.get(f"/upd/{name}/config", region=REGION, account=ACCOUNT).version == 2
        assert store.get(f"/upd/{name}/static", region=REGION, account=ACCOUNT).version == 1
        with pytest.raises(KeyError):
            deployment.parameter(f"/upd/{name}/gone", REGION, ACCOUNT)
        # Tables: the retained one is still in DynamoDB Local but no longer deployed; the other one is deleted;
        # the new stack's table is created.
        names = [t.name for t in deployment.tables]
        assert f"{name}-retained" not in names and f"{name}-deleted" not in names and f"{name}-added" in names
        client = ddb_local.client(region=REGION, account=ACCOUNT)
        assert client.describe_table(TableName=f"{name}-retained")["Table"]["TableStatus"] == "ACTIVE"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.describe_table(TableName=f"{name}-deleted")


def test_an_invocation_in_flight_finishes_with_the_old_environment(tmp_path, ddb_local: DynamoDBLocal):
    name, v1, v2 = _versions(tmp_path)
    fast = lambda settings: FAST(settings, polling_interval_s=0.02)  # noqa: E731
    with deploy(v1, ddb_local, settings_override=fast) as deployment:
        deployment.start()
        _put(deployment, name, "slow")
        _wait_for(deployment, name, "slow#started#v1")  # the invocation is in flight now
        deployment.update(v2)
        _put(deployment, name, "after")
        _wait_for(deployment, name, "after#v2")
        deployment.stop()
        deployment.run_until_idle()
        sink = {key for key in _sink(deployment, name) if not key.endswith("fn2")}
        # The slow record was delivered once, with v1 from start to end; the next record with v2 only.
        assert sink == {"slow#started#v1", "slow#v1", "after#v2"}
