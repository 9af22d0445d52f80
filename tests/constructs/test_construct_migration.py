"""Initial load through a native export: the migration bucket, the replica created from the export, and the
replicator's mapping held disabled until the load is done (DESIGN.md, "Initial load and cut-over")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Template
from construct_helpers import (
    EXPORT_ARN,
    EXPORT_ID,
    EXPORTER_ROLE_ARN,
    FOREIGN_KEY_ARN,
    IMPORTED_STREAM_ARN,
    OTHER_ACCOUNT,
    PK,
    SK,
    SOURCE_ACCOUNT,
    Synthesized,
    as_list,
    only_resource,
    partition_arn,
    policy_statements,
    resources_of_type,
    synth,
)

from cdk_replication import (
    ExistingSource,
    ExportImportSource,
    MigrationBucket,
    MigrationOptions,
    ReplicaTable,
    ReplicatedTable,
    ReplicationConfigError,
    ReplicatorOptions,
    TableLocation,
    TableOptions,
)
from cdk_replication.naming import migration_bucket_name

TARGET_STACK = f"Orders-{OTHER_ACCOUNT}-eu-west-1"
SOURCE_STACK = "Orders-us-west-2"
BUCKET_NAME = f"orders-migration-{OTHER_ACCOUNT}-eu-west-1"
PREFIX = "cdk-replication/Orders/Orders"
EXPORT_ACTIONS = ["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl"]


def _bucket(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((logical_id, bucket),) = resources_of_type(template, "AWS::S3::Bucket").items()
    return logical_id, bucket


def _bucket_arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _objects_arn(logical_id: str, suffix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [_bucket_arn(logical_id), suffix]]}


def _expected_bucket_policy(logical_id: str, condition: dict[str, Any] | None) -> list[dict[str, Any]]:
    export = {
        "Sid": "ExportFromSourceAccount",
        "Effect": "Allow",
        "Principal": {"AWS": partition_arn(f":iam::{SOURCE_ACCOUNT}:root")},
        "Action": EXPORT_ACTIONS,
        "Resource": _objects_arn(logical_id, f"/{PREFIX}/*"),
    }
    if condition is not None:
        export["Condition"] = condition
    return [
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Resource": [_bucket_arn(logical_id), _objects_arn(logical_id, "/*")],
        },
        export,
    ]


def _orders(app: cdk.App, *, replica: TableLocation, **overrides: Any) -> ReplicatedTable:
    props: dict[str, Any] = {
        "source": TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        "replicas": [replica],
        "existing_source": ExistingSource(
            stream_arn=IMPORTED_STREAM_ARN,
            stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            partition_key=PK,
            sort_key=SK,
        ),
    }
    props.update(overrides)
    return ReplicatedTable(app, "Orders", **props)


def _foreign(migration: MigrationOptions) -> TableLocation:
    return TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=migration)


def _mapping(template: dict[str, Any]) -> dict[str, Any]:
    return only_resource(template, "AWS::Lambda::EventSourceMapping")["Properties"]


# --- the bucket -------------------------------------------------------------------------------------------


def test_bucket_properties(migration_prepare: Synthesized) -> None:
    _, bucket = _bucket(migration_prepare.template_json(TARGET_STACK))
    assert bucket["Properties"] == {
        "BucketName": BUCKET_NAME,
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {
            "Rules": [
                {
                    "Id": "ExpireExports",
                    "Status": "Enabled",
                    "ExpirationInDays": 30,
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    }
    # Versioning off and no access log configuration are decisions (see MigrationBucket), not omissions.
    assert "VersioningConfiguration" not in bucket["Properties"]
    assert "LoggingConfiguration" not in bucket["Properties"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_bucket_policy_lets_only_the_source_account_write_under_the_prefix(migration_prepare: Synthesized) -> None:
    template = migration_prepare.template_json(TARGET_STACK)
    logical_id, _ = _bucket(template)
    policy = only_resource(template, "AWS::S3::BucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": logical_id}
    assert policy["PolicyDocument"]["Statement"] == _expected_bucket_policy(logical_id, condition=None)


def test_bucket_policy_with_an_exporter_role_names_only_that_role(migration_import: Synthesized) -> None:
    template = migration_import.template_json(TARGET_STACK)
    logical_id, _ = _bucket(template)
    statements = only_resource(template, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statements == _expected_bucket_policy(
        logical_id, condition={"ArnEquals": {"aws:PrincipalArn": EXPORTER_ROLE_ARN}}
    )


def test_bucket_name_and_prefix_are_outputs_for_the_exporting_side(migration_prepare: Synthesized) -> None:
    outputs = migration_prepare.template_json(TARGET_STACK)["Outputs"]
    assert outputs["OrdersMigrationBucketName"]["Value"] == BUCKET_NAME
    assert outputs["OrdersMigrationExportPrefix"]["Value"] == PREFIX
    assert migration_prepare.subject.migration_bucket("eu-west-1", OTHER_ACCOUNT).bucket_name == BUCKET_NAME
    assert migration_prepare.subject.migration_bucket("eu-west-1", OTHER_ACCOUNT).export_prefix == PREFIX


def test_bucket_with_a_customer_managed_key(tmp_path: Path) -> None:
    synthesized = synth(
        tmp_path,
        lambda app: _orders(app, replica=_foreign(MigrationOptions(encryption_key_arn=FOREIGN_KEY_ARN))),
    )
    assert synthesized.nag_error is None, synthesized.nag_report()
    _, bucket = _bucket(synthesized.template_json(TARGET_STACK))
    assert bucket["Properties"]["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": FOREIGN_KEY_ARN},
            }
        ]
    }


def test_bucket_options_prefix_name_expiry_and_removal() -> None:
    app = cdk.App()
    construct = _orders(
        app,
        replica=_foreign(
            MigrationOptions(
                export_prefix="exports/orders",
                bucket_name="acme-orders-import",
                expiration=cdk.Duration.days(7),
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
        ),
    )
    template = Template.from_stack(construct.stack_for("eu-west-1", OTHER_ACCOUNT)).to_json()
    logical_id, bucket = _bucket(template)
    assert bucket["Properties"]["BucketName"] == "acme-orders-import"
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 7
    assert bucket["DeletionPolicy"] == "Delete"
    statements = only_resource(template, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statements[1]["Resource"] == _objects_arn(logical_id, "/exports/orders/*")
    assert template["Outputs"]["OrdersMigrationExportPrefix"]["Value"] == "exports/orders"


# --- the replica table --------------------------------------------------------------------------------


def test_before_the_export_the_replica_table_is_not_created(migration_prepare: Synthesized) -> None:
    template = migration_prepare.template_json(TARGET_STACK)
    assert resources_of_type(template, "AWS::DynamoDB::Table") == {}
    # The writer role is there already, so the replicator can write as soon as the table exists.
    assert len(resources_of_type(template, "AWS::IAM::Role")) == 1
    assert migration_prepare.subject.replica_tables == {}


def test_replica_is_created_from_the_export_with_keys_gsis_and_ttl(migration_import: Synthesized) -> None:
    table = only_resource(migration_import.template_json(TARGET_STACK), "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["ImportSourceSpecification"] == {
        "InputFormat": "DYNAMODB_JSON",
        "InputCompressionType": "GZIP",
        "S3BucketSource": {
            "S3Bucket": BUCKET_NAME,
            "S3BucketOwner": OTHER_ACCOUNT,
            "S3KeyPrefix": f"{PREFIX}/AWSDynamoDB/{EXPORT_ID}/data/",
        },
    }
    assert properties["TableName"] == "Orders"
    assert properties["KeySchema"] == [
        {"AttributeName": "Id", "KeyType": "HASH"},
        {"AttributeName": "Version", "KeyType": "RANGE"},
    ]
    assert properties["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "byCustomer",
            "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert "LocalSecondaryIndexes" not in properties
    assert "StreamSpecification" not in properties
    assert table["DeletionPolicy"] == "Retain"


def test_dropping_the_bucket_leaves_the_table_definition_unchanged(migration_import: Synthesized) -> None:
    """The import source is create-only: the table's template must not change when the bucket goes."""
    app = cdk.App()
    construct = _orders(
        app,
        replica=_foreign(MigrationOptions(export_arn=EXPORT_ARN, exporter_role_arn=EXPORTER_ROLE_ARN, keep_bucket=False)),
        global_secondary_indexes=[
            dynamodb.GlobalSecondaryIndexProps(
                index_name="byCustomer",
                partition_key=dynamodb.Attribute(name="customer", type=dynamodb.AttributeType.STRING),
            )
        ],
        time_to_live_attribute="expiresAt",
    )
    template = Template.from_stack(construct.stack_for("eu-west-1", OTHER_ACCOUNT)).to_json()
    assert resources_of_type(template, "AWS::S3::Bucket") == {}
    assert resources_of_type(template, "AWS::S3::BucketPolicy") == {}
    assert list(template["Outputs"]) == ["ReplicationStatus"]  # the published status only (issue 14)
    assert resources_of_type(template, "AWS::DynamoDB::Table") == resources_of_type(
        migration_import.template_json(TARGET_STACK), "AWS::DynamoDB::Table"
    )
    with pytest.raises(KeyError, match="has 0 migration buckets"):
        construct.migration_bucket("eu-west-1", OTHER_ACCOUNT)


def test_zstd_compression_reaches_the_import_source() -> None:
    app = cdk.App()
    construct = _orders(
        app,
        replica=_foreign(
            MigrationOptions(export_arn=EXPORT_ARN, compression=dynamodb.InputCompressionType.ZSTD)
        ),
    )
    table = only_resource(
        Template.from_stack(construct.stack_for("eu-west-1", OTHER_ACCOUNT)).to_json(), "AWS::DynamoDB::Table"
    )
    assert table["Properties"]["ImportSourceSpecification"]["InputCompressionType"] == "ZSTD"


# --- the mapping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["migration_prepare", "migration_import"])
def test_mapping_starts_disabled_and_its_uuid_is_an_output(shape: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synthesized = request.getfixturevalue(shape)
    template = synthesized.template_json(SOURCE_STACK)
    mapping_id = next(iter(resources_of_type(template, "AWS::Lambda::EventSourceMapping")))
    assert _mapping(template)["Enabled"] is False
    assert _mapping(template)["StartingPosition"] == "TRIM_HORIZON"
    assert template["Outputs"]["ReplicatorEventSourceMappingUuid"]["Value"] == {"Ref": mapping_id}
    assert synthesized.subject.replicator.enabled is False


def test_mapping_is_enabled_when_the_user_says_so_after_the_import() -> None:
    app = cdk.App()
    construct = _orders(
        app,
        replica=_foreign(MigrationOptions(export_arn=EXPORT_ARN)),
        replicator=ReplicatorOptions(enabled=True),
    )
    template = Template.from_stack(construct.source_stack).to_json()
    assert _mapping(template)["Enabled"] is True
    assert list(template["Outputs"]) == ["ReplicationStatus"]  # the published status only (issue 14)


def test_without_a_migration_the_mapping_is_enabled_and_has_no_output(one_way: Synthesized) -> None:
    template = one_way.template_json("Employee-us-west-2")
    assert _mapping(template)["Enabled"] is True
    assert list(template["Outputs"]) == ["ReplicationStatus"]  # the published status only (issue 14)


def test_a_disabled_mapping_without_migration_also_gets_the_uuid_output() -> None:
    app = cdk.App()
    construct = ReplicatedTable(
        app,
        "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")],
        partition_key=PK,
        replicator=ReplicatorOptions(enabled=False),
    )
    outputs = Template.from_stack(construct.source_stack).to_json()["Outputs"]
    assert sorted(outputs) == ["ReplicationStatus", "ReplicatorEventSourceMappingUuid"]


# --- cross-account least privilege ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["migration_prepare", "migration_import"])
def test_target_account_grants_only_the_source_account_and_exact_resources(
    shape: str, request: pytest.FixtureRequest
) -> None:
    """Every Allow in the target account's stack names the source account (one exact role by condition)
    and exact ARNs: the writer role's table, the bucket's export prefix."""
    synthesized: Synthesized = request.getfixturevalue(shape)
    template = synthesized.template_json(TARGET_STACK)
    logical_id, _ = _bucket(template)
    seen = []
    for _, where, statement in policy_statements(template):
        if statement["Effect"] != "Allow":
            continue
        if "Principal" in statement:
            assert statement["Principal"] == {"AWS": partition_arn(f":iam::{SOURCE_ACCOUNT}:root")}, where
        if where == "trust":
            replicator = partition_arn(f":iam::{SOURCE_ACCOUNT}:role/Orders-us-west-2-replicator")
            assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": replicator}}
        resources = as_list(statement.get("Resource", []))
        seen.append((where, tuple(sorted(as_list(statement["Action"])))))
        assert all(r != "*" for r in resources), (where, statement)
        if where == "bucket policy":
            assert resources == [_objects_arn(logical_id, f"/{PREFIX}/*")]
    assert sorted(seen) == sorted(
        [
            ("bucket policy", tuple(EXPORT_ACTIONS)),
            ("policy WriteReplica", ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem")),
            ("trust", ("sts:AssumeRole",)),
        ]
    )


def test_source_account_stack_gets_no_s3_permissions_on_the_migration_bucket(migration_import: Synthesized) -> None:
    """The export runs with the caller's credentials, never with the replicator's role: the only S3 statements
    in the source stack are the replicator's own failure bucket's (issue 12: write failure records there, and
    its TLS-only bucket policy); none names the migration bucket."""
    template = migration_import.template_json(SOURCE_STACK)
    (failure_bucket,) = resources_of_type(template, "AWS::S3::Bucket")
    assert failure_bucket.startswith("ReplicatorFailureBucket")
    bucket_arn = {"Fn::GetAtt": [failure_bucket, "Arn"]}
    s3_statements = [
        (where, statement.get("Sid"), tuple(as_list(statement["Action"])), statement["Resource"])
        for _, where, statement in policy_statements(template)
        if any(a.startswith("s3:") for a in as_list(statement["Action"]))
    ]
    objects_arn = {"Fn::Join": ["", [bucket_arn, "/*"]]}
    lambda_objects_arn = {"Fn::Join": ["", [bucket_arn, "/aws/lambda/*"]]}
    assert s3_statements == [
        ("bucket policy", None, ("s3:*",), [bucket_arn, objects_arn]),
        ("policy Replication", "WriteFailureRecords", ("s3:PutObject",), lambda_objects_arn),
        ("policy Replication", "ListFailureBucket", ("s3:ListBucket",), bucket_arn),
    ]


# --- building blocks on their own ------------------------------------------------------------------------


def test_bucket_and_import_compose_in_user_stacks(tmp_path: Path) -> None:
    def build(app: cdk.App) -> ReplicaTable:
        stack = cdk.Stack(app, "Landing", env=cdk.Environment(account=OTHER_ACCOUNT, region="eu-west-1"))
        bucket = MigrationBucket(
            stack,
            "Exports",
            bucket_name="landing-exports-222222222222",
            exporter_account=SOURCE_ACCOUNT,
            export_prefix="orders",
        )
        return ReplicaTable(
            stack,
            "Orders",
            table_name="orders",
            options=TableOptions(partition_key=PK),
            import_source=bucket.import_source(EXPORT_ARN),
        )

    synthesized = synth(tmp_path, build)
    assert synthesized.nag_error is None, synthesized.nag_report()
    template = synthesized.template_json("Landing")
    spec = only_resource(template, "AWS::DynamoDB::Table")["Properties"]["ImportSourceSpecification"]
    assert spec["S3BucketSource"] == {
        "S3Bucket": "landing-exports-222222222222",
        "S3BucketOwner": OTHER_ACCOUNT,
        "S3KeyPrefix": f"orders/AWSDynamoDB/{EXPORT_ID}/data/",
    }


def test_import_source_data_prefix_is_below_the_export_folder() -> None:
    source = ExportImportSource(
        bucket_name="b-123", bucket_account=OTHER_ACCOUNT, export_prefix="a/b", export_arn=EXPORT_ARN
    )
    assert source.data_prefix == f"a/b/AWSDynamoDB/{EXPORT_ID}/data/"


@pytest.mark.parametrize(
    ("table", "account", "region", "expected"),
    [
        ("Orders", OTHER_ACCOUNT, "eu-west-1", f"orders-migration-{OTHER_ACCOUNT}-eu-west-1"),
        ("My_Table.v2", OTHER_ACCOUNT, "eu-west-1", f"my-table-v2-migration-{OTHER_ACCOUNT}-eu-west-1"),
    ],
)
def test_bucket_name_is_deterministic_and_valid(table: str, account: str, region: str, expected: str) -> None:
    assert migration_bucket_name(table, account, region) == expected


def test_long_table_names_give_a_bounded_stable_bucket_name() -> None:
    long = "A" * 200
    name = migration_bucket_name(long, OTHER_ACCOUNT, "ap-southeast-2")
    assert len(name) == 63
    assert name == migration_bucket_name(long, OTHER_ACCOUNT, "ap-southeast-2")
    assert name != migration_bucket_name(long + "B", OTHER_ACCOUNT, "ap-southeast-2")
    assert name == name.lower()


# --- validation ---------------------------------------------------------------------------------------------


def _build(replica_migration: MigrationOptions | None = None, **overrides: Any) -> ReplicatedTable:
    replica = _foreign(replica_migration) if replica_migration is not None else _foreign(MigrationOptions())
    return _orders(cdk.App(), replica=overrides.pop("replica", replica), **overrides)


OTHER_EXPORT = f"arn:aws:dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Invoices/export/{EXPORT_ID}"


@pytest.mark.parametrize(
    ("migration", "overrides", "match"),
    [
        (
            MigrationOptions(),
            {
                "local_secondary_indexes": [
                    dynamodb.LocalSecondaryIndexProps(
                        index_name="byDate", sort_key=dynamodb.Attribute(name="date", type=dynamodb.AttributeType.STRING)
                    )
                ]
            },
            r"local secondary indexes \(byDate\); a table imported from S3 cannot have local secondary indexes.*"
            r"Fix: drop migration and load the replica with `cdk-replication backfill`",
        ),
        (
            MigrationOptions(export_arn=OTHER_EXPORT),
            {},
            r"export_arn '.*table/Invoices/export/.*' is an export of table 'Invoices' in 111111111111/us-west-2, "
            r"not of the source 'Orders'.*Fix: use the ExportArn of an export of the source table",
        ),
        (
            MigrationOptions(export_arn=EXPORT_ARN.replace("us-west-2", "us-east-1")),
            {},
            r"is an export of table 'Orders' in 111111111111/us-east-1, not of the source 'Orders' in "
            r"111111111111/us-west-2",
        ),
        (
            MigrationOptions(export_arn=f"arn:aws:dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Orders"),
            {},
            r"export_arn 'arn:aws:dynamodb:us-west-2:111111111111:table/Orders' is not a DynamoDB export ARN.*"
            r"table/<source table>/export/<export id>",
        ),
        (
            MigrationOptions(keep_bucket=False),
            {},
            r"keep_bucket=False but no export_arn.*keep the bucket until the export is done",
        ),
        (
            MigrationOptions(),
            {"replicator": ReplicatorOptions(enabled=True)},
            r"ReplicatorOptions\(enabled=True\) but replica 'Orders' \(222222222222/eu-west-1\) has no export_arn "
            r"yet.*enable the mapping only after the import",
        ),
        (
            MigrationOptions(bucket_name="Orders_Bucket"),
            {},
            r"bucket_name 'Orders_Bucket' is not a valid S3 bucket name.*3-63 characters",
        ),
        (
            MigrationOptions(bucket_name="my..bucket"),
            {},
            r"bucket_name 'my..bucket' is not a valid S3 bucket name",
        ),
        (
            MigrationOptions(exporter_role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/exporter"),
            {},
            r"exporter_role_arn '.*' is in account 222222222222, not in the exporting account 111111111111.*"
            r"name a role of the source table's account",
        ),
        (
            MigrationOptions(exporter_role_arn="exporter"),
            {},
            r"exporter_role_arn 'exporter' is not a literal IAM role ARN",
        ),
        (
            MigrationOptions(encryption_key_arn=f"arn:aws:kms:us-west-2:{SOURCE_ACCOUNT}:key/k1"),
            {},
            r"encryption_key_arn '.*' is in 111111111111/us-west-2, but the table is in 222222222222/eu-west-1",
        ),
        (
            MigrationOptions(expiration=cdk.Duration.hours(36)),
            {},
            r"expiration is 1 day 12 hours, not a whole number of days of at least one.*Duration.days\(1\)",
        ),
        (
            MigrationOptions(removal_policy=cdk.RemovalPolicy.SNAPSHOT),
            {},
            r"removal_policy SNAPSHOT does not apply to S3 buckets.*RETAIN or DESTROY",
        ),
        (
            MigrationOptions(export_arn=EXPORT_ARN),
            {"point_in_time_recovery": False, "existing_source": None, "partition_key": PK},
            r"point_in_time_recovery is False; ExportTableToPointInTime reads the source's point-in-time "
            r"recovery data",
        ),
    ],
    ids=lambda value: None,
)
def test_migration_errors(migration: MigrationOptions, overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=match) as raised:
        _build(migration, **overrides)
    assert raised.value.construct_path.startswith("Orders")


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("", "is empty, which would let the exporter write anywhere in the bucket"),
        ("/orders", "starts or ends with '/'"),
        ("orders/", "starts or ends with '/'"),
        ("a//b", r"has an empty, '.' or '..' path segment"),
        ("a/../b", r"has an empty, '.' or '..' path segment"),
        ("orders/*", "has characters outside"),
        ("orders?", "has characters outside"),
        ("x" * 901, "is 901 characters long"),
    ],
)
def test_bad_export_prefixes(prefix: str, problem: str) -> None:
    with pytest.raises(ReplicationConfigError, match=f"export_prefix '.*' {problem}.*Fix: use a non-empty prefix"):
        _build(MigrationOptions(export_prefix=prefix))


def test_migration_on_the_source_is_rejected() -> None:
    with pytest.raises(ReplicationConfigError, match=r"the source TableLocation has a migration.*replica TableLocation"):
        _build(source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, migration=MigrationOptions()))


def test_migration_in_multi_active_mode_is_rejected() -> None:
    from cdk_replication import ReplicationMode

    with pytest.raises(ReplicationConfigError, match=r"migration in MULTI_ACTIVE mode.*backfill --conflict-attribute"):
        ReplicatedTable(
            cdk.App(),
            "Profiles",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1", migration=MigrationOptions())],
            partition_key=PK,
            mode=ReplicationMode.MULTI_ACTIVE,
        )


def _landing() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Landing", env=cdk.Environment(account=OTHER_ACCOUNT, region="eu-west-1"))


def test_replica_table_import_from_a_bucket_in_another_account_is_rejected() -> None:
    source = ExportImportSource(
        bucket_name="exports-111111111111", bucket_account=SOURCE_ACCOUNT, export_prefix="orders", export_arn=EXPORT_ARN
    )
    with pytest.raises(
        ReplicationConfigError,
        match=r"Landing/Orders: the import bucket 'exports-111111111111' is in account 111111111111, but the table "
        r"is created in account 222222222222.*MigrationBucket in the replica table's own account",
    ):
        ReplicaTable(_landing(), "Orders", table_name="orders", options=TableOptions(partition_key=PK), import_source=source)


def test_replica_table_import_with_local_secondary_indexes_is_rejected() -> None:
    source = ExportImportSource(
        bucket_name="exports-222222222222", bucket_account=OTHER_ACCOUNT, export_prefix="orders", export_arn=EXPORT_ARN
    )
    options = TableOptions(
        partition_key=PK,
        sort_key=SK,
        local_secondary_indexes=(
            dynamodb.LocalSecondaryIndexProps(
                index_name="byDate", sort_key=dynamodb.Attribute(name="date", type=dynamodb.AttributeType.STRING)
            ),
        ),
    )
    with pytest.raises(
        ReplicationConfigError,
        match=r"local secondary indexes \(byDate\) and an import_source.*Fix: drop the migration and load the "
        r"table with `cdk-replication backfill`",
    ):
        ReplicaTable(_landing(), "Orders", table_name="orders", options=options, import_source=source)


def test_migration_bucket_needs_an_explicit_environment() -> None:
    stack = cdk.Stack(cdk.App(), "Agnostic")
    with pytest.raises(ReplicationConfigError, match=r"Agnostic/Exports: stack Agnostic has no explicit account"):
        MigrationBucket(
            stack, "Exports", bucket_name="exports-1", exporter_account=SOURCE_ACCOUNT, export_prefix="orders"
        )


def test_migration_bucket_needs_a_literal_exporter_account() -> None:
    with pytest.raises(ReplicationConfigError, match=r"exporter_account '1234' is not a 12-digit account id"):
        MigrationBucket(_landing(), "Exports", bucket_name="exports-1", exporter_account="1234", export_prefix="orders")


def test_unknown_compression_is_rejected() -> None:
    source = ExportImportSource(
        bucket_name="exports-222222222222",
        bucket_account=OTHER_ACCOUNT,
        export_prefix="orders",
        export_arn=EXPORT_ARN,
        compression="gzip",  # type: ignore[arg-type]
    )
    # Refused by the props type check (cdk_replication/props.py), which names the member meant.
    with pytest.raises(
        ReplicationConfigError,
        match=r"import_source\.compression is a str \('gzip'\), not an InputCompressionType\. "
        r"Fix: pass aws_dynamodb\.InputCompressionType\.GZIP",
    ):
        ReplicaTable(_landing(), "Orders", table_name="orders", options=TableOptions(partition_key=PK), import_source=source)


def test_the_docs_walkthrough_names_what_the_stacks_output() -> None:
    """docs/cli.md, "Cross-account migration with a migration bucket": stack names, output keys and values."""
    app = cdk.App()
    construct = ReplicatedTable(
        app,
        "Orders",
        source=TableLocation(region="us-east-1", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
        existing_source=ExistingSource(
            stream_arn=f"arn:aws:dynamodb:us-east-1:{SOURCE_ACCOUNT}:table/orders/stream/2026-01-01T00:00:00.000",
            stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        ),
    )
    target = construct.stack_for("eu-west-1", OTHER_ACCOUNT)
    assert (construct.source_stack.stack_name, target.stack_name) == ("Orders-us-east-1", TARGET_STACK)
    outputs = Template.from_stack(target).to_json()["Outputs"]
    assert {k: v["Value"] for k, v in outputs.items()} == {
        "ordersMigrationBucketName": BUCKET_NAME,
        "ordersMigrationExportPrefix": "cdk-replication/orders/orders",
        "ReplicationStatus": "ACTIVE",
    }
    assert "ReplicatorEventSourceMappingUuid" in Template.from_stack(construct.source_stack).to_json()["Outputs"]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    for text in (BUCKET_NAME, "cdk-replication/orders/orders", "ordersMigrationBucketName", TARGET_STACK):
        assert text in docs


def test_two_migrated_replicas_whose_output_names_collide_are_rejected() -> None:
    with pytest.raises(ReplicationConfigError, match=r"replica 'orders_eu' and another migrated replica in "
                       r"222222222222/eu-west-1 give the same output names \(orderseuMigrationBucketName\)"):
        _build(
            replicas=[
                TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, table_name="orders-eu", migration=MigrationOptions()),
                TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, table_name="orders_eu", migration=MigrationOptions()),
            ],
            replica=None,
        )


def test_the_s1_acknowledgement_is_the_only_thing_between_the_bucket_and_cdk_nag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its acknowledgement the bucket is flagged for AwsSolutions-S1 (server access logs) and for
    nothing else: every other AwsSolutions rule is met, not acknowledged."""
    import cdk_replication.migration as migration

    monkeypatch.setattr(migration, "acknowledge_nag", lambda *args, **kwargs: None)
    synthesized = synth(tmp_path, lambda app: _orders(app, replica=_foreign(MigrationOptions())))
    findings = {
        (v["ruleName"], construct["constructPath"])
        for r in synthesized.nag_report()["pluginReports"]
        for v in r["violations"]
        for construct in v["violatingConstructs"]
    }
    assert findings == {("AwsSolutions-S1", f"Orders/{OTHER_ACCOUNT}-eu-west-1/MigrationBucket-Orders/Bucket/Resource")}


def test_every_disabled_multi_active_mapping_outputs_its_uuid_in_its_own_stack() -> None:
    """Adding a region to a multi-active table starts with every mapping disabled (backfill first)."""
    from cdk_replication import ReplicationMode

    construct = ReplicatedTable(
        cdk.App(),
        "Profiles",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")],
        partition_key=PK,
        mode=ReplicationMode.MULTI_ACTIVE,
        replicator=ReplicatorOptions(enabled=False),
    )
    for region in ("us-west-2", "us-east-1"):
        template = Template.from_stack(construct.stack_for(region)).to_json()
        mapping_id = next(iter(resources_of_type(template, "AWS::Lambda::EventSourceMapping")))
        assert template["Outputs"]["ReplicatorEventSourceMappingUuid"]["Value"] == {"Ref": mapping_id}
