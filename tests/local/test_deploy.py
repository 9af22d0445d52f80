"""The local deploy reads everything from a synthesized assembly: tables, functions, mappings, queues and the
intrinsic functions that connect them."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from cdk_replication.local import MappingSettings, TemplateError, deploy, read_assembly

PROBE = Path(__file__).parent / "functions" / "probe"
ACCOUNT, REGION = "555555555555", "ap-southeast-2"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)


def _assembly(tmp: Path, table_name: str, with_consumer: bool = True) -> Path:
    app = cdk.App(outdir=str(tmp))
    data = cdk.Stack(app, "Data", env=ENV, stack_name=f"{table_name}-data")
    table = dynamodb.Table(
        data, "Table", table_name=table_name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.NUMBER),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        time_to_live_attribute="expiresAt",
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    table.add_global_secondary_index(index_name="byEmail",
                                     partition_key=dynamodb.Attribute(name="email", type=dynamodb.AttributeType.STRING))
    table.add_local_secondary_index(index_name="byDate",
                                    sort_key=dynamodb.Attribute(name="date", type=dynamodb.AttributeType.STRING))
    if not with_consumer:
        return Path(app.synth().directory)
    # A second stack in the same environment: its references to the table become exports and imports.
    consumer = cdk.Stack(app, "Consumer", env=ENV, stack_name=f"{table_name}-consumer")
    queue = sqs.Queue(consumer, "Dlq", queue_name=f"{table_name}-dlq")
    fn = lambda_.Function(
        consumer, "Probe", runtime=lambda_.Runtime.PYTHON_3_12, handler="probe.handler",
        code=lambda_.Code.from_asset(str(PROBE)), timeout=cdk.Duration.seconds(20), memory_size=256,
        environment={
            "TABLE": table.table_name,
            "STREAM": table.table_stream_arn,
            "WHERE": cdk.Fn.join("/", [cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.URL_SUFFIX]),
            "SUB": cdk.Fn.sub("${AWS::Region}:${Name}", {"Name": table.table_name}),
            "LABEL": cdk.Fn.select(1, cdk.Fn.split("/stream/", table.table_stream_arn)),
            "QUEUE_URL": queue.queue_url,
        },
    )
    fn.add_event_source(sources.DynamoEventSource(
        table, starting_position=lambda_.StartingPosition.TRIM_HORIZON, batch_size=7,
        bisect_batch_on_error=True, retry_attempts=2, max_record_age=cdk.Duration.seconds(120),
        report_batch_item_failures=True, on_failure=sources.SqsDlq(queue),
    ))
    return Path(app.synth().directory)


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    return _assembly(tmp_path_factory.mktemp("assembly"), "deploy-test")


def test_reads_stacks_in_dependency_order(assembly):
    stacks = read_assembly(assembly)
    assert [s.stack_name for s in stacks] == ["deploy-test-data", "deploy-test-consumer"]
    assert {(s.region, s.account) for s in stacks} == {(REGION, ACCOUNT)}


def test_deploys_tables_functions_mappings_and_queues(assembly, ddb_local):
    with deploy(assembly, ddb_local) as dep:
        table = dep.table("deploy-test")
        assert (table.region, table.account) == (REGION, ACCOUNT)
        client = table.client()
        described = client.describe_table(TableName="deploy-test")["Table"]
        assert [k["AttributeName"] for k in described["KeySchema"]] == ["pk", "sk"]
        assert described["GlobalSecondaryIndexes"][0]["IndexName"] == "byEmail"
        assert described["LocalSecondaryIndexes"][0]["IndexName"] == "byDate"
        assert described["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        ttl = client.describe_time_to_live(TableName="deploy-test")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expiresAt"

        (fn,) = dep.functions
        assert (fn.region, fn.account, fn.timeout_s, fn.memory_mb) == (REGION, ACCOUNT, 20.0, 256)
        env = fn.invoke({"action": "env", "names": ["TABLE", "STREAM", "WHERE", "SUB", "LABEL", "QUEUE_URL"]}).payload
        assert env["TABLE"] == "deploy-test"  # through Fn::ImportValue of the data stack's export
        assert env["STREAM"] == table.stream_arn
        assert env["STREAM"].startswith(f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/deploy-test/stream/")
        assert env["WHERE"] == f"aws/{REGION}/{ACCOUNT}/amazonaws.com"
        assert env["SUB"] == f"{REGION}:deploy-test"
        assert env["LABEL"] == table.stream_arn.split("/stream/")[1]
        assert env["QUEUE_URL"] == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/deploy-test-dlq"

        (mapping,) = dep.mappings
        assert mapping.function is fn
        assert mapping.settings == MappingSettings(
            batch_size=7, starting_position="TRIM_HORIZON", bisect_batch_on_function_error=True,
            maximum_retry_attempts=2, maximum_record_age_s=120, report_batch_item_failures=True)
        assert mapping.destination is dep.queue("deploy-test-dlq")

        for i in range(10):
            client.put_item(TableName="deploy-test", Item={"pk": {"S": "a"}, "sk": {"N": str(i)}})
        stats = dep.run_until_idle()[mapping.uuid]
        assert stats.records_processed == 10 and stats.batches_succeeded == 2  # 7 + 3


def test_deploy_is_idempotent_for_tables(assembly, ddb_local):
    with deploy(assembly, ddb_local) as first:
        first.table("deploy-test").client().put_item(TableName="deploy-test",
                                                     Item={"pk": {"S": "kept"}, "sk": {"N": "1"}})
    with deploy(assembly, ddb_local) as second:
        client = second.table("deploy-test").client()
        assert "Item" in client.get_item(TableName="deploy-test", Key={"pk": {"S": "kept"}, "sk": {"N": "1"}})


def test_existing_table_with_another_schema_is_an_error(tmp_path, ddb_local):
    client = ddb_local.client(region=REGION, account=ACCOUNT)
    client.create_table(TableName="deploy-clash", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    with pytest.raises(TemplateError, match="deploy-clash.*already exists.*delete the table"):
        deploy(_assembly(tmp_path, "deploy-clash", with_consumer=False), ddb_local)


def test_imported_stream_must_exist(tmp_path, ddb_local):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Importer", env=ENV)
    fn = lambda_.Function(stack, "Probe", runtime=lambda_.Runtime.PYTHON_3_12, handler="probe.handler",
                          code=lambda_.Code.from_asset(str(PROBE)))
    lambda_.EventSourceMapping(
        stack, "Mapping", target=fn, starting_position=lambda_.StartingPosition.LATEST,
        event_source_arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/NotThere/stream/2020-01-01T00:00:00.000")
    with pytest.raises(TemplateError, match="'NotThere' in 555555555555/ap-southeast-2.*create the imported table"):
        deploy(app.synth().directory, ddb_local)


def test_stack_without_environment_is_an_error(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    cdk.Stack(app, "Agnostic")
    with pytest.raises(TemplateError, match="no explicit environment"):
        read_assembly(app.synth().directory)


def test_folder_without_assembly_is_an_error(tmp_path):
    with pytest.raises(TemplateError, match="synthesize the app first"):
        read_assembly(tmp_path)
