"""Synth-time validation: each bad configuration raises ReplicationConfigError naming the value and the fix.

These construct only (no synth), so they are cheap.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from construct_helpers import IMPORTED_STREAM_ARN, OTHER_ACCOUNT, PK, SK, SOURCE_ACCOUNT

from cdk_replication import (
    ConflictStrategy,
    ExistingSource,
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

SOURCE = TableLocation(region="us-west-2", account=SOURCE_ACCOUNT)
NEW_AND_OLD = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES


def build(**overrides: Any) -> ReplicatedTable:
    props: dict[str, Any] = {"source": SOURCE, "replicas": [TableLocation(region="us-east-1")], "partition_key": PK}
    props.update(overrides)
    return ReplicatedTable(cdk.App(), "Employee", **props)


def existing(**overrides: Any) -> ExistingSource:
    props: dict[str, Any] = {"stream_arn": IMPORTED_STREAM_ARN, "stream_view_type": NEW_AND_OLD}
    props.update(overrides)
    return ExistingSource(**props)


def test_error_is_a_value_error_naming_the_construct() -> None:
    with pytest.raises(ReplicationConfigError) as raised:
        build(replicas=[TableLocation(region="us-east-1"), TableLocation(region="us-east-1")])
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith("Employee: ")
    assert raised.value.construct_path == "Employee"
    assert "Fix: " in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"replicas": [TableLocation(region="us-east-1"), TableLocation(region="us-east-1")]},
            r"replicas\[1\] duplicates replicas\[0\] \(account 111111111111, region us-east-1, table 'Employee'\)"
            r".*list each replica location once",
        ),
        (
            {"replicas": [TableLocation(region="us-west-2")]},
            r"replicas\[0\] is in the source's account 111111111111 and region us-west-2 with the same table name "
            r"'Employee'.*distinct table_name",
        ),
        ({"replicas": []}, r"replicas is empty"),
        ({"partition_key": None}, r"no partition_key is given.*pass partition_key="),
        (
            {"source": TableLocation(region="us-west-2")},
            r"source account is None, not a literal account id.*12-digit account id",
        ),
        (
            {"source": TableLocation(region=cdk.Aws.REGION, account=SOURCE_ACCOUNT)},
            r"source region is '\$\{Token\[AWS\.Region\.\d+\]\}', not a literal region.*region-agnostic",
        ),
        (
            {"source": TableLocation(region="us-west-2", account=cdk.Aws.ACCOUNT_ID)},
            r"source account is '\$\{Token\[AWS\.AccountId\.\d+\]\}', not a literal account id",
        ),
        ({"source": TableLocation(region="oregon", account=SOURCE_ACCOUNT)}, r"source region 'oregon' is not an AWS region"),
        ({"replicas": [TableLocation(region="us-east-1", account="12345")]}, r"replicas\[0\] account '12345' is not a 12-digit"),
        (
            {"source": TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name="bad name!")},
            r"source table_name 'bad name!' is not a valid DynamoDB table name.*3-255 characters",
        ),
        ({"replicas": [TableLocation(region="us-east-1", table_name="ab")]}, r"replicas\[0\] table_name 'ab' is not a valid"),
        (
            {"billing_mode": dynamodb.BillingMode.PROVISIONED},
            r"billing_mode PROVISIONED needs read_capacity and write_capacity \(got None, None\)",
        ),
        ({"read_capacity": 5, "write_capacity": 5}, r"capacities, or set billing_mode=BillingMode.PROVISIONED"),
        (
            {"local_secondary_indexes": [dynamodb.LocalSecondaryIndexProps(index_name="byX", sort_key=SK)]},
            r"local_secondary_indexes need a table sort key",
        ),
        (
            {"conflict_attribute": "updatedAt"},
            r"conflict_attribute='updatedAt' / conflict_strategy=None are set in ONE_WAY mode.*MULTI_ACTIVE",
        ),
        (
            {"encryption": dynamodb.TableEncryption.CUSTOMER_MANAGED},
            r"replicas\[0\] \('Employee' in us-east-1\) has no encryption_key_arn but encryption is CUSTOMER_MANAGED",
        ),
        (
            {"replicas": [TableLocation(region="us-east-1", encryption_key_arn="arn:aws:kms:us-east-1:111111111111:key/k1")]},
            r"encryption_key_arn is set for table 'Employee' in us-east-1 but encryption is DEFAULT",
        ),
        (
            {
                "encryption": dynamodb.TableEncryption.CUSTOMER_MANAGED,
                "replicas": [TableLocation(region="us-east-1", encryption_key_arn="arn:aws:kms:us-west-2:111111111111:key/k1")],
            },
            r"is in 111111111111/us-west-2, but the table is in 111111111111/us-east-1",
        ),
        (
            {
                "encryption": dynamodb.TableEncryption.CUSTOMER_MANAGED,
                "replicas": [TableLocation(region="us-east-1", encryption_key_arn="alias/mine")],
            },
            r"'alias/mine' is not a literal KMS key ARN.*aliases cannot be used",
        ),
        (
            {
                "mode": ReplicationMode.MULTI_ACTIVE,
                "replicas": [TableLocation(region="us-west-2", table_name="EmployeeCopy")],
            },
            r"MULTI_ACTIVE copies share a region \(us-west-2, us-west-2\).*own region",
        ),
        (
            {"mode": ReplicationMode.MULTI_ACTIVE, "conflict_attribute": "Id"},
            r"conflict_attribute 'Id' is a key attribute",
        ),
        (
            {"mode": ReplicationMode.MULTI_ACTIVE, "conflict_attribute": "_rep_updatedAt"},
            r"conflict_attribute '_rep_updatedAt' starts with the metadata prefix '_rep_'",
        ),
        (
            {"mode": ReplicationMode.MULTI_ACTIVE, "existing_source": existing()},
            r"existing_source is not supported in MULTI_ACTIVE mode",
        ),
        (
            {"replicator": ReplicatorOptions(metadata_prefix="I")},
            r"metadata_prefix 'I' is a prefix of key attribute 'Id'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_topology_and_table_errors(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=match):
        build(**overrides)


@pytest.mark.parametrize(
    ("view", "shown"),
    [
        (dynamodb.StreamViewType.KEYS_ONLY, "KEYS_ONLY"),
        (dynamodb.StreamViewType.NEW_IMAGE, "NEW_IMAGE"),
        (dynamodb.StreamViewType.OLD_IMAGE, "OLD_IMAGE"),
        (None, "no stream"),
    ],
)
def test_existing_source_needs_new_and_old_images(view: dynamodb.StreamViewType | None, shown: str) -> None:
    with pytest.raises(
        ReplicationConfigError,
        match=rf"existing source table 'Orders' has stream view {shown};.*enable the stream with NEW_AND_OLD_IMAGES",
    ):
        build(partition_key=None, existing_source=existing(stream_view_type=view, partition_key=PK))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"partition_key": PK, "existing": {"partition_key": PK, "sort_key": SK}},
            r"sort_key None and existing_source.sort_key Version:STRING disagree \(a sort key on only one side",
        ),
        (
            {"partition_key": PK, "sort_key": SK, "existing": {"partition_key": PK}},
            r"sort_key Version:STRING and existing_source.sort_key None disagree",
        ),
        (
            {
                "partition_key": dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.STRING),
                "existing": {"partition_key": PK},
            },
            r"partition_key Id:STRING differs from existing_source.partition_key Id:NUMBER",
        ),
        (
            {"partition_key": PK, "existing": {"stream_arn": "arn:aws:dynamodb:us-east-1:111111111111:table/Orders"}},
            r"is not a DynamoDB stream ARN",
        ),
        (
            {
                "partition_key": PK,
                "existing": {
                    "stream_arn": "arn:aws:dynamodb:us-east-1:111111111111:table/Orders/stream/2026-01-01T00:00:00.000"
                },
            },
            r"source region 'us-west-2' differs from the region of existing_source.stream_arn \('us-east-1'\)",
        ),
        (
            {"partition_key": PK, "source_table_name": "Other", "existing": {}},
            r"source table_name 'Other' differs from the table in existing_source.stream_arn \('Orders'\)",
        ),
    ],
)
def test_existing_source_errors(overrides: dict[str, Any], match: str) -> None:
    existing_props = overrides.pop("existing")
    name = overrides.pop("source_table_name", None)
    source = TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name=name)
    with pytest.raises(ReplicationConfigError, match=match):
        build(source=source, existing_source=existing(**existing_props), **overrides)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"retry_attempts": 10001}, r"retry_attempts is 10001, outside what Lambda accepts.*0-10000 or -1"),
        ({"retry_attempts": -2}, r"retry_attempts is -2"),
        ({"max_record_age": cdk.Duration.seconds(59)}, r"max_record_age \(seconds\) is 59.*60-604800 or None"),
        ({"max_record_age": cdk.Duration.days(8)}, r"max_record_age \(seconds\) is 691200"),
        ({"batch_size": 0}, r"batch_size is 0.*1-10000"),
        ({"batch_size": 10001}, r"batch_size is 10001"),
        ({"max_batching_window": cdk.Duration.seconds(301)}, r"max_batching_window \(seconds\) is 301.*0-300"),
        ({"parallelization_factor": 11}, r"parallelization_factor is 11.*1-10"),
        ({"memory_size": 64}, r"memory_size \(MiB\) is 64.*128-10240"),
        ({"timeout": cdk.Duration.minutes(16)}, r"timeout \(seconds\) is 960.*1-900"),
        ({"max_concurrency": 513}, r"max_concurrency is 513.*1-512"),
        ({"metadata_prefix": ""}, r"metadata_prefix '' is not a usable attribute-name prefix"),
    ],
)
def test_replicator_option_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=match):
        build(replicator=ReplicatorOptions(**options))


@pytest.mark.parametrize(
    "options",
    [
        {"retry_attempts": -1, "max_record_age": cdk.Duration.days(7)},
        {"retry_attempts": 10, "max_record_age": None},
        {"retry_attempts": 0, "max_record_age": cdk.Duration.seconds(60)},
        {"retry_attempts": 10000, "max_record_age": cdk.Duration.days(7)},
    ],
)
def test_replicator_option_bounds_are_accepted(options: dict[str, Any]) -> None:
    build(replicator=ReplicatorOptions(**options))


def test_inside_a_stack_is_rejected() -> None:
    stack = cdk.Stack(cdk.App(), "Mine", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
    with pytest.raises(ReplicationConfigError, match=r"ReplicatedTable is inside a Stack.*App or a Stage.*Replicator"):
        ReplicatedTable(stack, "Employee", source=SOURCE, replicas=[TableLocation(region="us-east-1")], partition_key=PK)


def _replicator_stack(region: str = "us-west-2") -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Mine", env=cdk.Environment(account=SOURCE_ACCOUNT, region=region))


def _resolved(region: str, name: str = "Employee", account: str = SOURCE_ACCOUNT) -> ResolvedTable:
    return ResolvedTable(table_name=name, region=region, account=account)


def test_replicator_must_live_in_its_sources_region() -> None:
    with pytest.raises(ReplicationConfigError, match=r"stack is in 111111111111/us-east-1 but its source table"):
        Replicator(
            _replicator_stack("us-east-1"),
            "Replicator",
            source=_resolved("us-west-2"),
            stream_arn=IMPORTED_STREAM_ARN,
            key=KeySchema("Id"),
            targets=[ReplicationTarget(_resolved("eu-west-1"))],
        )


def test_replicator_needs_an_explicit_environment() -> None:
    with pytest.raises(ReplicationConfigError, match=r"has no explicit account and region.*env=Environment"):
        Replicator(
            cdk.Stack(cdk.App(), "Agnostic"),
            "Replicator",
            source=_resolved("us-west-2"),
            stream_arn=IMPORTED_STREAM_ARN,
            key=KeySchema("Id"),
            targets=[ReplicationTarget(_resolved("eu-west-1"))],
        )


def test_imported_cmk_source_does_not_force_keys_on_created_replicas() -> None:
    construct = build(
        partition_key=None,
        source=TableLocation(
            region="us-west-2", account=SOURCE_ACCOUNT, encryption_key_arn="arn:aws:kms:us-west-2:111111111111:key/k"
        ),
        existing_source=existing(partition_key=PK),
    )
    from aws_cdk.assertions import Template

    roles = Template.from_stack(construct.source_stack).find_resources("AWS::IAM::Role")
    (role,) = roles.values()
    sids = {s["Sid"]: s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]}
    assert sids["DecryptSourceStream"]["Resource"] == "arn:aws:kms:us-west-2:111111111111:key/k"
    assert "UseTargetTableKeys" not in sids


def test_replicator_needs_targets() -> None:
    with pytest.raises(ReplicationConfigError, match=r"targets is empty"):
        Replicator(
            _replicator_stack(),
            "Replicator",
            source=_resolved("us-west-2"),
            stream_arn=IMPORTED_STREAM_ARN,
            key=KeySchema("Id"),
            targets=[],
        )


def test_replicator_rejects_an_environment_over_4_kb() -> None:
    targets = [ReplicationTarget(_resolved("eu-west-1", name=f"{'T' * 200}{i}")) for i in range(20)]
    with pytest.raises(ReplicationConfigError, match=r"environment is \d+ bytes, above Lambda's 4 KB limit"):
        Replicator(
            _replicator_stack(),
            "Replicator",
            source=_resolved("us-west-2"),
            stream_arn=IMPORTED_STREAM_ARN,
            key=KeySchema("Id"),
            targets=targets,
        )


def test_replicator_conflict_settings_need_multi_active() -> None:
    with pytest.raises(ReplicationConfigError, match=r"conflict_strategy=<ConflictStrategy.VERSION"):
        Replicator(
            _replicator_stack(),
            "Replicator",
            source=_resolved("us-west-2"),
            stream_arn=IMPORTED_STREAM_ARN,
            key=KeySchema("Id"),
            targets=[ReplicationTarget(_resolved("eu-west-1"))],
            conflict_strategy=ConflictStrategy.VERSION,
        )


def test_cross_account_resource_policy_with_customer_keys_is_rejected() -> None:
    from cdk_replication import CrossAccountAccess

    with pytest.raises(ReplicationConfigError, match=r"use cross_account_access=CrossAccountAccess.WRITER_ROLE"):
        build(
            source=TableLocation(
                region="us-west-2", account=SOURCE_ACCOUNT, encryption_key_arn="arn:aws:kms:us-west-2:111111111111:key/k"
            ),
            replicas=[
                TableLocation(
                    region="eu-west-1",
                    account=OTHER_ACCOUNT,
                    encryption_key_arn=f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/k",
                )
            ],
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            cross_account_access=CrossAccountAccess.RESOURCE_POLICY,
        )
