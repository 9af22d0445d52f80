"""Overriding defaults: table schema and capacity reach every copy; mapping options reach the mapping."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from construct_helpers import PK, SK, SOURCE_ACCOUNT, Synthesized, only_resource, role_statements, synth

from cdk_replication import ReplicatedTable, ReplicatorOptions, TableLocation


@pytest.fixture(scope="module")
def customized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Ledger",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name="ledger-main"),
            replicas=[TableLocation(region="eu-central-1", table_name="ledger-eu")],
            partition_key=PK,
            sort_key=SK,
            billing_mode=dynamodb.BillingMode.PROVISIONED,
            read_capacity=5,
            write_capacity=7,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexProps(
                    index_name="byOwner",
                    partition_key=dynamodb.Attribute(name="owner", type=dynamodb.AttributeType.STRING),
                    read_capacity=2,
                    write_capacity=3,
                )
            ],
            local_secondary_indexes=[
                dynamodb.LocalSecondaryIndexProps(
                    index_name="byDate", sort_key=dynamodb.Attribute(name="date", type=dynamodb.AttributeType.STRING)
                )
            ],
            time_to_live_attribute="expires",
            deletion_protection=True,
            point_in_time_recovery=False,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            stack_name_prefix="ledger",
            replicator=ReplicatorOptions(
                memory_size=1024,
                timeout=cdk.Duration.minutes(2),
                runtime=lambda_.Runtime.PYTHON_3_14,
                log_retention=logs.RetentionDays.ONE_WEEK,
                log_level="DEBUG",
                metadata_prefix="__r_",
                max_concurrency=16,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=500,
                max_batching_window=cdk.Duration.seconds(2),
                retry_attempts=3,
                max_record_age=None,
                bisect_batch_on_error=False,
                parallelization_factor=2,
                enabled=False,
            ),
        )

    return synth(tmp_path_factory.mktemp("customized"), build)


EXPECTED_TABLE_PROPERTIES = {
    "AttributeDefinitions": [
        {"AttributeName": "Id", "AttributeType": "N"},
        {"AttributeName": "Version", "AttributeType": "S"},
        {"AttributeName": "owner", "AttributeType": "S"},
        {"AttributeName": "date", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}, {"AttributeName": "Version", "KeyType": "RANGE"}],
    # PROVISIONED is CloudFormation's default billing mode, so CDK leaves BillingMode out.
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byOwner",
            "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 3},
        }
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": "byDate",
            "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}, {"AttributeName": "date", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
    "DeletionProtectionEnabled": True,
    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": False},
    "SSESpecification": {"SSEEnabled": True},
}


@pytest.mark.parametrize(("stack_name", "table_name"), [("ledger-us-west-2", "ledger-main"), ("ledger-eu-central-1", "ledger-eu")])
def test_schema_and_capacity_reach_every_copy(customized: Synthesized, stack_name: str, table_name: str) -> None:
    table = only_resource(customized.template_json(stack_name), "AWS::DynamoDB::Table")
    properties = dict(table["Properties"])
    stream = properties.pop("StreamSpecification", None)
    assert properties == {**EXPECTED_TABLE_PROPERTIES, "TableName": table_name}
    assert stream == ({"StreamViewType": "NEW_AND_OLD_IMAGES"} if table_name == "ledger-main" else None)
    assert table["DeletionPolicy"] == "Delete"


def test_mapping_options(customized: Synthesized) -> None:
    mapping = only_resource(customized.template_json("ledger-us-west-2"), "AWS::Lambda::EventSourceMapping")
    properties = mapping["Properties"]
    assert {k: properties.get(k) for k in sorted(properties) if k not in ("EventSourceArn", "FunctionName", "DestinationConfig")} == {
        "BatchSize": 500,
        "BisectBatchOnFunctionError": False,
        "Enabled": False,
        # Not an option: without it Lambda would ignore the partial batch response (test_construct_props.py).
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumBatchingWindowInSeconds": 2,
        "MaximumRetryAttempts": 3,
        # Not an option: the alarms and the dashboard read the mapping's own EventCount metrics.
        "MetricsConfig": {"Metrics": ["EventCount"]},
        "ParallelizationFactor": 2,
        "StartingPosition": "LATEST",
    }
    # No record age: Lambda's default (-1, unlimited).
    assert "MaximumRecordAgeInSeconds" not in properties


def test_function_options(customized: Synthesized) -> None:
    template = customized.template_json("ledger-us-west-2")
    function = only_resource(template, "AWS::Lambda::Function")["Properties"]
    assert (function["Runtime"], function["MemorySize"], function["Timeout"]) == ("python3.14", 1024, 120)
    env = function["Environment"]["Variables"]
    assert (env["LOG_LEVEL"], env["REPLICATION_METADATA_PREFIX"], env["REPLICATION_MAX_CONCURRENCY"]) == ("DEBUG", "__r_", "16")
    assert '"tableName":"ledger-eu"' in env["REPLICATION_TARGETS"]
    assert only_resource(template, "AWS::Logs::LogGroup")["Properties"] == {"RetentionInDays": 7}


def test_cdk_nag_flags_only_what_the_user_turned_off(customized: Synthesized) -> None:
    """Turning PITR off is reported (the library acknowledges nothing on the user's behalf), and Python 3.14,
    the latest runtime CDK knows, satisfies AwsSolutions-L1 without acknowledgement."""
    findings = {
        (v["ruleName"], v["severity"]) for r in customized.nag_report()["pluginReports"] for v in r["violations"]
    }
    assert findings == {("AwsSolutions-DDB3", "warning")}


def test_same_region_copy_lives_in_the_source_stack(tmp_path: Path) -> None:
    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Employee",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-west-2", table_name="EmployeeHistory")],
            partition_key=PK,
        )

    synthesized = synth(tmp_path, build)
    assert [s.stack_name for s in synthesized.stacks()] == ["Employee-us-west-2"]
    template = synthesized.template_json("Employee-us-west-2")
    names = sorted(
        r["Properties"]["TableName"] for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"
    )
    assert names == ["Employee", "EmployeeHistory"]
    assert synthesized.stack("Employee-us-west-2").dependencies == []


def test_new_source_with_customer_managed_key_gets_a_rotating_key_in_its_stack(tmp_path: Path) -> None:
    replica_key = f"arn:aws:kms:us-east-1:{SOURCE_ACCOUNT}:key/66666666-7777-8888-9999-000000000000"

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Employee",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1", encryption_key_arn=replica_key)],
            partition_key=PK,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        )

    synthesized = synth(tmp_path, build)
    assert synthesized.nag_error is None, synthesized.nag_report()
    source = synthesized.template_json("Employee-us-west-2")
    key_id, key = next((k, v) for k, v in source["Resources"].items() if v["Type"] == "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    table = only_resource(source, "AWS::DynamoDB::Table")["Properties"]
    assert table["SSESpecification"] == {
        "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        "SSEEnabled": True,
        "SSEType": "KMS",
    }
    statements = {s["Sid"]: s for s in role_statements(source, "ReplicatorRole")}
    assert statements["DecryptSourceStream"]["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert statements["UseTargetTableKeys"]["Resource"] == replica_key
    replica = only_resource(synthesized.template_json("Employee-us-east-1"), "AWS::DynamoDB::Table")["Properties"]
    assert replica["SSESpecification"]["KMSMasterKeyId"] == replica_key


def test_stacks_inside_a_stage_are_prefixed_with_the_stage_name() -> None:
    stage = cdk.Stage(cdk.App(), "Prod")
    construct = ReplicatedTable(
        stage,
        "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")],
        partition_key=PK,
    )
    assert sorted(s.stack_name for s in construct.stacks.values()) == ["Prod-Employee-us-east-1", "Prod-Employee-us-west-2"]


def test_grant_read_data_grants_on_the_source_table_only() -> None:
    from aws_cdk import aws_iam as iam
    from aws_cdk.assertions import Template

    app = cdk.App()
    construct = ReplicatedTable(
        app,
        "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")],
        partition_key=PK,
    )
    reader = iam.Role(construct.source_stack, "Reader", assumed_by=iam.AccountRootPrincipal())
    construct.grant_read_data(reader)
    policies = Template.from_stack(construct.source_stack).find_resources("AWS::IAM::Policy")
    (policy,) = policies.values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    table_id = next(iter(Template.from_stack(construct.source_stack).find_resources("AWS::DynamoDB::Table")))
    actions = {action for statement in statements for action in statement["Action"]}
    assert "dynamodb:GetItem" in actions
    assert not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    assert all(statement["Resource"] == [{"Fn::GetAtt": [table_id, "Arn"]}] for statement in statements)


def test_the_replication_path_picks_factor_and_batch_size_unless_given() -> None:
    """Issue 17: one-way over DynamoDB Streams 1 x 1,000; conditional writes (multi-active, Kinesis) 5 x 100;
    a value given is kept."""

    def resolved(options: ReplicatorOptions, **path: bool) -> tuple[int | None, int | None]:
        done = options.resolve("p", backlog=path.get("kinesis", False), **path)
        return done.parallelization_factor, done.batch_size

    assert resolved(ReplicatorOptions()) == (1, 1000)
    assert resolved(ReplicatorOptions(), multi_active=True) == (5, 100)
    assert resolved(ReplicatorOptions(), kinesis=True) == (5, 100)
    assert resolved(ReplicatorOptions(parallelization_factor=2), multi_active=True) == (2, 100)
    assert resolved(ReplicatorOptions(batch_size=500), kinesis=True) == (5, 500)
    assert resolved(ReplicatorOptions(parallelization_factor=10, batch_size=50)) == (10, 50)
