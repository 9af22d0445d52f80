"""Every default of the one-way shape, pinned: a change here is a change of the library's contract."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match
from construct_helpers import SOURCE_ACCOUNT, Synthesized, only_resource, replicator_config, resources_of_type


def test_one_stack_per_region_with_explicit_env_and_deterministic_names(one_way: Synthesized) -> None:
    stacks = {s.stack_name: (s.account, s.region) for s in one_way.stacks()}
    assert stacks == {
        "Employee-us-west-2": (SOURCE_ACCOUNT, "us-west-2"),
        "Employee-us-east-1": (SOURCE_ACCOUNT, "us-east-1"),
    }
    source = one_way.stack("Employee-us-west-2")
    assert [d.stack_name for d in source.dependencies] == ["Employee-us-east-1"]
    assert one_way.stack("Employee-us-east-1").dependencies == []
    assert one_way.subject.stacks[(SOURCE_ACCOUNT, "us-west-2")] is source
    assert one_way.subject.stack_for("us-east-1").stack_name == "Employee-us-east-1"


def test_source_table_defaults(one_way: Synthesized) -> None:
    table = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::DynamoDB::Table")
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"] == {
        "TableName": "Employee",
        "AttributeDefinitions": [{"AttributeName": "Id", "AttributeType": "N"}],
        "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": False,
        # SSEEnabled false is DynamoDB's AWS-owned key, the default encryption.
        "SSESpecification": {"SSEEnabled": False},
    }


def test_replica_table_defaults_have_no_stream(one_way: Synthesized) -> None:
    table = only_resource(one_way.template_json("Employee-us-east-1"), "AWS::DynamoDB::Table")
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"] == {
        "TableName": "Employee",
        "AttributeDefinitions": [{"AttributeName": "Id", "AttributeType": "N"}],
        "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": False,
        "SSESpecification": {"SSEEnabled": False},
    }


def test_replica_stack_holds_only_the_table(one_way: Synthesized) -> None:
    types = sorted(r["Type"] for r in one_way.template_json("Employee-us-east-1")["Resources"].values())
    # ... and its published status (issue 14: /cdk-replication/<table>/status).
    assert types == ["AWS::DynamoDB::Table", "AWS::SSM::Parameter"]


def test_function_defaults(one_way: Synthesized) -> None:
    template = one_way.template("Employee-us-west-2")
    template.resource_count_is("AWS::Lambda::Function", 1)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "replicator.handler.handler",
            "MemorySize": 1024,
            "Timeout": 60,
            "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp("^ReplicatorLogGroup")}},
            "Role": {"Fn::GetAtt": [Match.string_like_regexp("^ReplicatorRole"), "Arn"]},
        },
    )
    function = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::Lambda::Function")
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    assert "DeadLetterConfig" not in function["Properties"]


def test_function_code_is_the_lambda_src_asset(one_way: Synthesized) -> None:
    function = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::Lambda::Function")
    s3_key = function["Properties"]["Code"]["S3Key"]
    assert s3_key.endswith(".zip")
    asset_dir = one_way.outdir / f"asset.{s3_key.removesuffix('.zip')}"
    assert (asset_dir / "replicator" / "__init__.py").is_file()
    assert not list(asset_dir.rglob("__pycache__")), "bytecode caches must be excluded from the asset"


def test_log_group_retention(one_way: Synthesized) -> None:
    log_group = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::Logs::LogGroup")
    assert log_group["Properties"] == {"RetentionInDays": 30}


def test_event_source_mapping_defaults(one_way: Synthesized) -> None:
    template = one_way.template_json("Employee-us-west-2")
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")
    (table_id,) = resources_of_type(template, "AWS::DynamoDB::Table")
    (bucket_id,) = resources_of_type(template, "AWS::S3::Bucket")
    (function_id,) = resources_of_type(template, "AWS::Lambda::Function")
    assert mapping["Properties"] == {
        "EventSourceArn": {"Fn::GetAtt": [table_id, "StreamArn"]},
        "FunctionName": {"Ref": function_id},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 1000,
        "MaximumBatchingWindowInSeconds": 0,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 3600,
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ParallelizationFactor": 1,
        "Enabled": True,
        # The bucket's GetAtt Arn is arn:<partition>:s3:::<bucket>, the form Lambda takes for an S3 destination.
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [bucket_id, "Arn"]}}},
        # EventCount: PolledEventCount, OnFailureDestinationDeliveredEventCount, DroppedEventCount (alarms).
        "MetricsConfig": {"Metrics": ["EventCount"]},
    }


def test_failure_bucket_is_encrypted_private_tls_only_retained_and_expires_after_30_days(one_way: Synthesized) -> None:
    template = one_way.template_json("Employee-us-west-2")
    assert resources_of_type(template, "AWS::SQS::Queue") == {}
    bucket = only_resource(template, "AWS::S3::Bucket")
    (bucket_id,) = resources_of_type(template, "AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    assert bucket["Properties"] == {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "LifecycleConfiguration": {
            "Rules": [
                {
                    "Id": "ExpireFailureRecords",
                    "Status": "Enabled",
                    "ExpirationInDays": 30,
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    }
    policy = only_resource(template, "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": [arn, {"Fn::Join": ["", [arn, "/*"]]}],
        }
    ]


def test_environment_matches_the_replicator_contract(one_way: Synthesized) -> None:
    function = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::Lambda::Function")
    env = function["Properties"]["Environment"]["Variables"]
    assert env == {
        "REPLICATION_MODE": "ONE_WAY",
        "REPLICATION_SOURCE": '{"account":"111111111111","region":"us-west-2","tableName":"Employee"}',
        "REPLICATION_TARGETS": '[{"account":"111111111111","region":"us-east-1","tableName":"Employee"}]',
        "REPLICATION_KEY": '{"partitionKey":"Id","sortKey":null}',
        "REPLICATION_METADATA_PREFIX": "_rep_",
        "REPLICATION_MAX_CONCURRENCY": "128",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    # Plain strings, never CloudFormation intrinsics: the local runtime and the replicator read them as-is.
    assert all(isinstance(value, str) for value in env.values())
    json.loads(env["REPLICATION_SOURCE"])


def test_environment_is_accepted_by_the_replicator_config_parser(one_way: Synthesized) -> None:
    """The replicator's own parser (lambda_src/replicator/config.py) accepts exactly what the construct writes."""
    load_config = replicator_config().load_config
    function = only_resource(one_way.template_json("Employee-us-west-2"), "AWS::Lambda::Function")
    config = load_config(function["Properties"]["Environment"]["Variables"])
    assert config.mode.value == "ONE_WAY"
    assert (config.source.table_name, config.source.region, config.source.account) == (
        "Employee",
        "us-west-2",
        SOURCE_ACCOUNT,
    )
    assert [(t.table_name, t.region, t.account, t.role_arn) for t in config.targets] == [
        ("Employee", "us-east-1", SOURCE_ACCOUNT, None)
    ]
    assert (config.key.partition_key, config.key.sort_key) == ("Id", None)
    assert (config.metadata_prefix, config.max_concurrency, config.log_level) == ("_rep_", 128, "INFO")


def test_surface(one_way: Synthesized) -> None:
    construct = one_way.subject
    assert construct.source_table.table_name is not None
    assert [(loc.table_name, loc.region) for loc in construct.replica_tables] == [("Employee", "us-east-1")]
    assert construct.replicator_function is construct.replicator.function
    assert construct.failure_bucket is construct.replicator.failure_bucket is not None
    assert construct.failure_queue is construct.replicator.failure_queue is None
    assert construct.source_stack.stack_name == "Employee-us-west-2"
