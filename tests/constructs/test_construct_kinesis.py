"""Kinesis Data Streams as the change source: the data stream, the source table's destination, the mapping,
the replicator's exact permissions and environment, and the synth-time errors."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from construct_helpers import (
    DATA_STREAM_ARN,
    IMPORTED_STREAM_ARN,
    OTHER_ACCOUNT,
    PK,
    SOURCE_ACCOUNT,
    Synthesized,
    as_list,
    only_resource,
    policy_statements,
    resources_of_type,
    role_statements,
)

from cdk_replication import (
    ChangeSource,
    ExistingSource,
    KinesisOptions,
    KeySchema,
    ReplicatedTable,
    ReplicationConfigError,
    ReplicationMode,
    ReplicationTarget,
    Replicator,
    ReplicatorOptions,
    ResolvedTable,
    TableLocation,
)

SOURCE_STACK = "Events-us-west-2"
STREAM_REF = {"Fn::GetAtt": ["ChangeStreamFBB59D54", "Arn"]}
KINESIS_READ = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]


def _environment(template: dict[str, Any]) -> dict[str, str]:
    return only_resource(template, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]


def test_the_data_stream_is_on_demand_encrypted_retained_with_the_chosen_retention(kinesis_source: Synthesized):
    template = kinesis_source.template_json(SOURCE_STACK)
    stream = only_resource(template, "AWS::Kinesis::Stream")
    assert stream["Properties"] == {
        "RetentionPeriodHours": 14 * 24,
        "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
    }
    assert stream["DeletionPolicy"] == "Retain"
    assert template["Resources"]["ChangeStreamFBB59D54"] is stream


def test_the_source_table_streams_to_it_with_microsecond_change_times(kinesis_source: Synthesized):
    table = only_resource(kinesis_source.template_json(SOURCE_STACK), "AWS::DynamoDB::Table")["Properties"]
    assert table["KinesisStreamSpecification"] == {
        "StreamArn": STREAM_REF,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
    }
    assert "TimeToLiveSpecification" not in table  # only the replicas hold tombstones


def test_the_mapping_reads_the_data_stream_with_safe_defaults_and_no_age_limit(kinesis_source: Synthesized):
    mapping = only_resource(kinesis_source.template_json(SOURCE_STACK), "AWS::Lambda::EventSourceMapping")
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == STREAM_REF
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == 10
    # Conditional writes (~1 ms of CPU each): five lanes of 100-record batches carry a saturated shard (issue 17).
    assert (properties["ParallelizationFactor"], properties["BatchSize"]) == (5, 100)
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "DestinationConfig" in properties
    # A backlog of days must not be discarded for its age; Lambda's default (-1) applies.
    assert "MaximumRecordAgeInSeconds" not in properties


def test_replicator_role_reads_exactly_the_data_stream_and_only_puts_items(kinesis_source: Synthesized):
    template = kinesis_source.template_json(SOURCE_STACK)
    statements = {s["Sid"]: s for s in role_statements(template, "ReplicatorRole")}
    assert statements["ReadSourceDataStream"] == {
        "Sid": "ReadSourceDataStream",
        "Effect": "Allow",
        "Action": KINESIS_READ,
        "Resource": STREAM_REF,
    }
    assert "ListStreams" not in statements and "ReadSourceStream" not in statements
    assert as_list(statements["WriteTargetTables"]["Action"]) == ["dynamodb:PutItem"]
    # Changes with equal times that the records cannot order are settled from the source item itself.
    assert statements["ReadSourceItems"] == {
        "Sid": "ReadSourceItems",
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": {
            "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Events"]]
        },
    }
    assert set(statements) == {
        "ReadSourceDataStream", "ReadSourceItems", "WriteOwnLogGroup", "WriteFailureRecords", "ListFailureBucket",
        "WriteTargetTables", "AssumeWriterRoles",
    }
    assert as_list(statements["AssumeWriterRoles"]["Resource"]) == [
        f"arn:aws:iam::{OTHER_ACCOUNT}:role/Events-eu-west-1-writer-{SOURCE_ACCOUNT}-us-west-2"
    ]
    for _, where, statement in policy_statements(template):
        assert "*" not in as_list(statement.get("Resource", [])), where


def test_cross_account_writer_role_may_only_put_items(kinesis_source: Synthesized):
    template = kinesis_source.template_json(f"Events-{OTHER_ACCOUNT}-eu-west-1")
    (statement,) = role_statements(template, "WriterEvents")
    assert statement["Action"] == "dynamodb:PutItem"


def test_environment_and_replica_ttl_carry_the_tombstone_contract(kinesis_source: Synthesized):
    env = _environment(kinesis_source.template_json(SOURCE_STACK))
    assert env["REPLICATION_CHANGE_SOURCE"] == "KINESIS"
    assert env["REPLICATION_MODE"] == "ONE_WAY"
    assert env["REPLICATION_TOMBSTONE_TTL_SECONDS"] == str((14 + 1) * 86400)  # retention + a day
    assert env["REPLICATION_TTL_ATTRIBUTE"] == "_rep_expiresAt"
    for stack in ("Events-us-east-1", f"Events-{OTHER_ACCOUNT}-eu-west-1"):
        table = only_resource(kinesis_source.template_json(stack), "AWS::DynamoDB::Table")["Properties"]
        assert table["TimeToLiveSpecification"] == {"AttributeName": "_rep_expiresAt", "Enabled": True}
        assert "KinesisStreamSpecification" not in table and "StreamSpecification" not in table


def test_existing_source_reads_its_given_stream_and_the_migration_waits_without_age_limit(
    kinesis_migration: Synthesized,
):
    template = kinesis_migration.template_json("Orders-us-west-2")
    assert resources_of_type(template, "AWS::Kinesis::Stream") == {}
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["EventSourceArn"] == DATA_STREAM_ARN
    assert mapping["Enabled"] is False
    assert "MaximumRecordAgeInSeconds" not in mapping
    statements = {s["Sid"]: s for s in role_statements(template, "ReplicatorRole")}
    assert statements["ReadSourceDataStream"]["Resource"] == DATA_STREAM_ARN
    env = _environment(template)
    assert env["REPLICATION_TOMBSTONE_TTL_SECONDS"] == str(31 * 86400)
    assert env["REPLICATION_TTL_ATTRIBUTE"] == "expiresAt"  # the user's TTL attribute serves the tombstones


def test_an_explicit_max_record_age_is_kept(tmp_path: Any):
    app = cdk.App(outdir=str(tmp_path))
    table = ReplicatedTable(
        app, "Events", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")], partition_key=PK, change_source=ChangeSource.KINESIS,
        replicator=ReplicatorOptions(max_record_age=cdk.Duration.days(2)),
    )
    template = app.synth().get_stack_by_name(SOURCE_STACK).template
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["MaximumRecordAgeInSeconds"] == 2 * 86400
    assert table.replicator.options.max_record_age is not None


def test_streams_migration_mapping_has_no_age_limit_either(migration_prepare: Synthesized):
    """The same backlog reasoning applies to a DynamoDB stream applied after an import."""
    template = migration_prepare.template_json("Orders-us-west-2")
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["Enabled"] is False
    assert "MaximumRecordAgeInSeconds" not in mapping


def _build(**overrides: Any) -> ReplicatedTable:
    props: dict[str, Any] = {
        "source": TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        "replicas": [TableLocation(region="us-east-1")],
        "partition_key": PK,
        "change_source": ChangeSource.KINESIS,
    }
    props.update(overrides)
    return ReplicatedTable(cdk.App(), "Events", **props)


EXISTING = ExistingSource(stream_arn=IMPORTED_STREAM_ARN, stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"mode": ReplicationMode.MULTI_ACTIVE, "replicas": [TableLocation(region="us-east-1")]},
         "KINESIS with mode MULTI_ACTIVE.*DYNAMODB_STREAMS"),
        ({"change_source": ChangeSource.DYNAMODB_STREAMS, "kinesis": KinesisOptions()},
         "kinesis=KinesisOptions.*change_source is DYNAMODB_STREAMS.*add change_source=ChangeSource.KINESIS"),
        ({"existing_source": EXISTING, "partition_key": None,
          "source": TableLocation(region="us-west-2", account=SOURCE_ACCOUNT)},
         "no kinesis.stream_arn.*enable-kinesis-streaming-destination --table-name Orders"),
        ({"kinesis": KinesisOptions(retention=cdk.Duration.hours(12))}, "retention is 12 hours.*from 24 to 8760"),
        ({"kinesis": KinesisOptions(retention=cdk.Duration.days(366))}, "retention is 8784 hours"),
        ({"kinesis": KinesisOptions(shard_count=0)}, "shard_count is 0.*None for on-demand"),
        ({"kinesis": KinesisOptions(stream_name="bad name")}, "stream_name 'bad name'"),
        ({"kinesis": KinesisOptions(stream_arn="arn:aws:dynamodb:us-west-2:111111111111:table/x")},
         "not a literal Kinesis data stream ARN"),
        ({"kinesis": KinesisOptions(stream_arn=f"arn:aws:kinesis:us-east-1:{SOURCE_ACCOUNT}:stream/s")},
         "us-east-1 but the source table is in .*us-west-2"),
        ({"kinesis": KinesisOptions(stream_arn=DATA_STREAM_ARN, shard_count=2)}, "together with shard_count"),
    ],
)
def test_kinesis_errors(overrides: dict[str, Any], match: str) -> None:
    props = dict(overrides)
    if props.get("partition_key", PK) is None:
        del props["partition_key"]
        props["existing_source"] = ExistingSource(
            stream_arn=IMPORTED_STREAM_ARN,
            stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            partition_key=PK,
        )
    with pytest.raises(ReplicationConfigError, match=match):
        _build(**props)


def test_replicator_on_its_own_refuses_kinesis_for_multi_active_and_retention_without_kinesis() -> None:
    def replicator(**kwargs: Any) -> Replicator:
        stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
        return Replicator(
            stack, "R", source=ResolvedTable("t", "us-west-2", SOURCE_ACCOUNT), stream_arn=DATA_STREAM_ARN,
            key=KeySchema("pk"), targets=[ReplicationTarget(ResolvedTable("t", "us-east-1", SOURCE_ACCOUNT))],
            **kwargs,
        )

    with pytest.raises(ReplicationConfigError, match="change_source KINESIS with mode MULTI_ACTIVE"):
        replicator(change_source=ChangeSource.KINESIS, mode=ReplicationMode.MULTI_ACTIVE)
    with pytest.raises(ReplicationConfigError, match="change_retention is set but change_source is DYNAMODB"):
        replicator(change_retention=cdk.Duration.days(3))
    built = replicator(change_source=ChangeSource.KINESIS)
    assert json.loads(json.dumps(built.environment))["REPLICATION_TOMBSTONE_TTL_SECONDS"] == str(8 * 86400)


def test_the_replicator_accepts_what_the_construct_writes(kinesis_source: Synthesized) -> None:
    from construct_helpers import replicator_config

    config = replicator_config()
    loaded = config.load_config(_environment(kinesis_source.template_json(SOURCE_STACK)))
    assert loaded.change_source.value == "KINESIS"
    assert loaded.tombstone_ttl_seconds == 15 * 86400


def test_backlog_lifts_only_a_default_age_even_after_a_copy_and_keeps_an_explicit_one(tmp_path: Any) -> None:
    """A copied ReplicatorOptions still says "not given"; an explicit 1 hour (the default's value) is kept."""
    import copy

    from cdk_replication import MigrationOptions
    from cdk_replication.defaults import MAX_RECORD_AGE

    def mapping(options: ReplicatorOptions) -> dict[str, Any]:
        app = cdk.App()
        ReplicatedTable(
            app, "Orders", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
            existing_source=EXISTING_WITH_KEY, replicator=options,
        )
        template = app.synth().get_stack_by_name("Orders-us-west-2").template
        return only_resource(template, "AWS::Lambda::EventSourceMapping")["Properties"]

    assert "MaximumRecordAgeInSeconds" not in mapping(copy.deepcopy(ReplicatorOptions(batch_size=10)))
    assert mapping(ReplicatorOptions(max_record_age=MAX_RECORD_AGE))["MaximumRecordAgeInSeconds"] == 3600


EXISTING_WITH_KEY = ExistingSource(
    stream_arn=IMPORTED_STREAM_ARN, stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES, partition_key=PK
)


def test_unlimited_retries_with_an_unlimited_age_are_refused() -> None:
    with pytest.raises(ReplicationConfigError, match="retry_attempts is -1.*backlog.*bound the retries"):
        _build(replicator=ReplicatorOptions(retry_attempts=-1))
    with pytest.raises(ReplicationConfigError, match="retry_attempts is -1 .unlimited. and the maximum record age"):
        _build(change_source=ChangeSource.DYNAMODB_STREAMS,
               replicator=ReplicatorOptions(retry_attempts=-1, max_record_age=None))
    _build(replicator=ReplicatorOptions(retry_attempts=-1, max_record_age=cdk.Duration.days(3)))  # bounded: fine


def test_own_stream_with_a_customer_key_is_decrypted_with_exactly_that_key(tmp_path: Any) -> None:
    key = f"arn:aws:kms:us-west-2:{SOURCE_ACCOUNT}:key/12345678-1234-1234-1234-123456789012"
    app = cdk.App()
    ReplicatedTable(
        app, "Orders", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")], existing_source=EXISTING_WITH_KEY,
        change_source=ChangeSource.KINESIS, kinesis=KinesisOptions(stream_arn=DATA_STREAM_ARN, encryption_key_arn=key),
    )
    template = app.synth().get_stack_by_name("Orders-us-west-2").template
    statements = {s["Sid"]: s for s in role_statements(template, "ReplicatorRole")}
    assert statements["DecryptSourceStream"] == {
        "Sid": "DecryptSourceStream", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key,
    }
    with pytest.raises(ReplicationConfigError, match="encryption_key_arn is given for a stream created here"):
        _build(kinesis=KinesisOptions(encryption_key_arn=key))
    with pytest.raises(ReplicationConfigError, match="not a literal KMS key ARN"):
        _build(existing_source=EXISTING_WITH_KEY, partition_key=None,
               kinesis=KinesisOptions(stream_arn=DATA_STREAM_ARN, encryption_key_arn="alias/mine"))


def test_a_source_table_key_lets_the_replicator_read_source_items_and_nothing_more(tmp_path: Any) -> None:
    """Settling a tie reads the source item: with a customer-managed table key, DynamoDB decrypts with the
    caller's permission on that key."""
    table_key = f"arn:aws:kms:us-west-2:{SOURCE_ACCOUNT}:key/abcdefab-1234-1234-1234-123456789012"
    app = cdk.App()
    ReplicatedTable(
        app, "Orders", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, encryption_key_arn=table_key),
        replicas=[TableLocation(region="us-east-1")], existing_source=EXISTING_WITH_KEY,
        change_source=ChangeSource.KINESIS, kinesis=KinesisOptions(stream_arn=DATA_STREAM_ARN),
    )
    template = app.synth().get_stack_by_name("Orders-us-west-2").template
    statements = {s["Sid"]: s for s in role_statements(template, "ReplicatorRole")}
    assert statements["DecryptSourceItems"] == {
        "Sid": "DecryptSourceItems", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": table_key,
    }
    assert as_list(statements["ReadSourceItems"]["Action"]) == ["dynamodb:GetItem"]
    assert "DecryptSourceStream" not in statements  # the data stream has no customer-managed key here


def test_a_key_created_for_the_source_table_lets_the_replicator_read_source_items(tmp_path: Any) -> None:
    """With CUSTOMER_MANAGED encryption and no key ARN, the source stack creates the table's key; settling a tie
    reads a source item, which DynamoDB decrypts with the replicator's permission on exactly that key."""
    app = cdk.App()
    ReplicatedTable(
        app, "Orders", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(
            region="us-east-1",
            encryption_key_arn=f"arn:aws:kms:us-east-1:{SOURCE_ACCOUNT}:key/abcdefab-1234-1234-1234-123456789012",
        )],
        partition_key=dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.STRING),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        change_source=ChangeSource.KINESIS,
    )
    template = app.synth().get_stack_by_name("Orders-us-west-2").template
    keys = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert len(keys) == 1
    statements = {s["Sid"]: s for s in role_statements(template, "ReplicatorRole")}
    assert statements["DecryptSourceItems"] == {
        "Sid": "DecryptSourceItems", "Effect": "Allow", "Action": "kms:Decrypt",
        "Resource": {"Fn::GetAtt": [keys[0], "Arn"]},
    }
