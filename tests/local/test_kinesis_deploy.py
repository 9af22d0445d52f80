"""Deploy of an assembly with Kinesis Data Streams as the change source: an ``aws_kinesis.Stream``, a table
with ``kinesis_stream=`` (a bridge from its DynamoDB stream) and a function with a ``KinesisEventSource``."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from cdk_replication.local import (
    InvocationResult,
    KinesisEventSourceMapping,
    KinesisStreamingDestination,
    MappingSettings,
    StreamEventSourceMapping,
    TemplateError,
    deploy,
)

PROBE = Path(__file__).parent / "functions" / "probe"
ACCOUNT, REGION = "666666666666", "eu-north-1"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)


def _table(stack: cdk.Stack, name: str, **kwargs: Any) -> dynamodb.Table:
    return dynamodb.Table(
        stack, "Table", table_name=name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        removal_policy=cdk.RemovalPolicy.DESTROY, **kwargs)


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("kinesis-assembly")))
    stack = cdk.Stack(app, "Kds", env=ENV, stack_name="kds-deploy")
    stream = kinesis.Stream(stack, "Changes", stream_name="kds-deploy-changes", shard_count=2)
    table = _table(stack, "kds-deploy", kinesis_stream=stream,
                   kinesis_precision_timestamp=dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND)
    queue = sqs.Queue(stack, "Dlq", queue_name="kds-deploy-dlq")
    fn = lambda_.Function(
        stack, "Probe", runtime=lambda_.Runtime.PYTHON_3_12, handler="probe.handler",
        code=lambda_.Code.from_asset(str(PROBE)),
        environment={"STREAM_ARN": stream.stream_arn, "STREAM_NAME": stream.stream_name, "TABLE": table.table_name})
    fn.add_event_source(sources.KinesisEventSource(
        stream, starting_position=lambda_.StartingPosition.TRIM_HORIZON, batch_size=4, bisect_batch_on_error=True,
        retry_attempts=1, max_record_age=cdk.Duration.seconds(300), report_batch_item_failures=True,
        on_failure=sources.SqsDlq(queue)))
    return Path(app.synth().directory)


class _Recorder:
    """Stands between the mapping and the real function and keeps every event it delivered."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.arn = function.arn
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        self.events.append(event)
        return self.function.invoke(event)


def test_kinesis_stream_bridge_and_mapping_are_deployed(assembly, ddb_local):
    with deploy(assembly, ddb_local) as dep:
        assert dep.kinesis is not None and dep.kinesis.running
        arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/kds-deploy-changes"
        assert dep.stacks[0].kinesis_streams == [arn]
        table = dep.table("kds-deploy")
        (bridge,) = dep.bridges
        assert isinstance(bridge, KinesisStreamingDestination) and dep.bridge_for(table) is bridge
        assert (bridge.table_name, bridge.kinesis_stream_arn, bridge.precision) == ("kds-deploy", arn, "MICROSECOND")
        client = dep.kinesis.client(REGION, ACCOUNT)
        assert client.describe_stream_summary(StreamName="kds-deploy-changes")[
            "StreamDescriptionSummary"]["OpenShardCount"] == 2

        fn = dep.function(dep.functions[0].name)
        env = fn.invoke({"action": "env", "names": ["STREAM_ARN", "STREAM_NAME", "TABLE"]}).payload
        assert env == {"STREAM_ARN": arn, "STREAM_NAME": "kds-deploy-changes", "TABLE": "kds-deploy"}

        mapping = dep.mapping_for(fn)
        assert isinstance(mapping, KinesisEventSourceMapping)
        assert mapping.event_source_arn == arn
        assert mapping.settings == MappingSettings(
            batch_size=4, starting_position="TRIM_HORIZON", bisect_batch_on_function_error=True,
            maximum_retry_attempts=1, maximum_record_age_s=300, report_batch_item_failures=True)
        assert mapping.destination is dep.queue("kds-deploy-dlq")
        recorder = _Recorder(fn)
        mapping.function = recorder

        ddb = table.client()
        for i in range(5):
            ddb.put_item(TableName="kds-deploy", Item={"pk": {"S": f"item{i}"}, "empty": {"M": {}}})
        ddb.update_item(TableName="kds-deploy", Key={"pk": {"S": "item0"}}, UpdateExpression="SET v = :v",
                        ExpressionAttributeValues={":v": {"N": "1"}})
        stats = dep.run_until_idle()[mapping.uuid]
        assert bridge.stats.records_published == 6 and bridge.is_idle()
        assert stats.records_processed == 6 and stats.function_errors == 0

        records = [r for e in recorder.events for r in e["Records"]]
        changes = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in records]
        assert sorted((c["eventName"], c["dynamodb"]["Keys"]["pk"]["S"]) for c in changes) == sorted(
            [("INSERT", f"item{i}") for i in range(5)] + [("MODIFY", "item0")])
        assert all(c["tableName"] == "kds-deploy" and c["awsRegion"] == REGION for c in changes)
        assert all(c["dynamodb"]["NewImage"]["empty"] == {"M": {}} for c in changes)
        for r in records:
            assert r["eventSourceARN"] == arn and r["awsRegion"] == REGION
            # The function's execution role from the template.
            assert r["invokeIdentityArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/kds-deploy-ProbeServiceRole")

        # Faults are reachable through the deployment: the item's later write arrives first on Kinesis.
        bridge.reorder_next()
        ddb.put_item(TableName="kds-deploy", Item={"pk": {"S": "late"}, "v": {"N": "1"}})
        ddb.put_item(TableName="kds-deploy", Item={"pk": {"S": "late"}, "v": {"N": "2"}})
        recorder.events.clear()
        dep.run_until_idle()
        late = [json.loads(base64.b64decode(r["kinesis"]["data"])) for e in recorder.events for r in e["Records"]]
        assert [c["dynamodb"]["NewImage"]["v"]["N"] for c in late] == ["2", "1"]
        kinesis_plane = dep.kinesis
    assert not kinesis_plane.running  # close() stops the Kinesis the deployment started (and deletes its streams)


def test_background_mode_runs_the_bridge(assembly, ddb_local):
    with deploy(assembly, ddb_local,
                settings_override=lambda s: MappingSettings(**{**s.__dict__, "polling_interval_s": 0.05})) as dep:
        dep.run_until_idle()  # what the previous deploy left in the table's stream is not published again
        (bridge,) = dep.bridges
        assert bridge.stats.records_published == 0  # the table existed: its destination starts at LATEST
        assert dep.mappings[0].stats.invocations == 0  # a fresh stream: the last deployment's was deleted
        dep.start()
        dep.table("kds-deploy").client().put_item(TableName="kds-deploy", Item={"pk": {"S": "bg"}})
        for _ in range(400):
            if dep.mappings[0].stats.records_processed:
                break
            time.sleep(0.05)
        dep.stop()
        assert bridge.stats.records_published == 1 and dep.mappings[0].stats.records_processed == 1


def test_a_deployment_without_kinesis_does_not_start_it(tmp_path, ddb_local):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Plain", env=ENV, stack_name="kds-plain")
    table = _table(stack, "kds-plain")
    fn = lambda_.Function(stack, "Probe", runtime=lambda_.Runtime.PYTHON_3_12, handler="probe.handler",
                          code=lambda_.Code.from_asset(str(PROBE)))
    fn.add_event_source(sources.DynamoEventSource(table, starting_position=lambda_.StartingPosition.TRIM_HORIZON))
    with deploy(app.synth().directory, ddb_local) as dep:
        dep.run_until_idle()
        assert dep.kinesis is None and dep.bridges == []
        assert isinstance(dep.mappings[0], StreamEventSourceMapping)


def test_kinesis_specification_needs_the_tables_dynamodb_stream(tmp_path, ddb_local):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "NoStream", env=ENV, stack_name="kds-nostream")
    stream = kinesis.Stream(stack, "Changes", shard_count=1)
    dynamodb.Table(stack, "Table", table_name="kds-nostream", kinesis_stream=stream,
                   partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING))
    with pytest.raises(TemplateError, match="kds-nostream, Table.*NEW_AND_OLD_IMAGES DynamoDB stream"):
        deploy(app.synth().directory, ddb_local)
