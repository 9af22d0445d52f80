"""Module-scoped synthesized apps, one per stack shape, shared by the construct tests."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import (
    ChangeSource,
    CrossAccountAccess,
    ExistingSource,
    KinesisOptions,
    MigrationOptions,
    ReplicatedTable,
    ReplicationMode,
    TableLocation,
)

from construct_helpers import (
    DATA_STREAM_ARN,
    EXPORT_ARN,
    EXPORTER_ROLE_ARN,
    FOREIGN_KEY_ARN,
    IMPORTED_STREAM_ARN,
    OTHER_ACCOUNT,
    PK,
    REPLICA_KEY_ARN,
    SK,
    SOURCE_ACCOUNT,
    SOURCE_KEY_ARN,
    Synthesized,
    synth,
)

def _out(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="package")
def one_way(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The tutorial shape with defaults only: new source in us-west-2, replica in us-east-1."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Employee",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1")],
            partition_key=PK,
        )

    return synth(_out(tmp_path_factory, "one_way"), build)


@pytest.fixture(scope="package")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """An existing CMK-encrypted source table with a sort key, a CMK replica and a same-region audit copy."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Orders",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, encryption_key_arn=SOURCE_KEY_ARN),
            replicas=[
                TableLocation(region="us-east-1", encryption_key_arn=REPLICA_KEY_ARN),
                TableLocation(region="us-west-2", table_name="OrdersAudit", encryption_key_arn=SOURCE_KEY_ARN),
            ],
            existing_source=ExistingSource(
                stream_arn=IMPORTED_STREAM_ARN,
                stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
                partition_key=PK,
                sort_key=SK,
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        )

    return synth(_out(tmp_path_factory, "imported"), build)


@pytest.fixture(scope="package")
def cross_account(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Replica in another account through a writer role (the default), with a customer-managed key."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Employee",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, encryption_key_arn=SOURCE_KEY_ARN),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, encryption_key_arn=FOREIGN_KEY_ARN)],
            partition_key=PK,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        )

    return synth(_out(tmp_path_factory, "cross_account"), build)


@pytest.fixture(scope="package")
def resource_policy(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Replica in another account through a table resource policy."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Employee",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            cross_account_access=CrossAccountAccess.RESOURCE_POLICY,
        )

    return synth(_out(tmp_path_factory, "resource_policy"), build)


@pytest.fixture(scope="package")
def multi_active(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Three writers, one of them in another account."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Profiles",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            sort_key=SK,
            mode=ReplicationMode.MULTI_ACTIVE,
        )

    return synth(_out(tmp_path_factory, "multi_active"), build)


#: The existing source of the migration shapes: Orders (Id, Version) in us-west-2 of SOURCE_ACCOUNT.
def _orders_source() -> ExistingSource:
    return ExistingSource(
        stream_arn=IMPORTED_STREAM_ARN,
        stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        partition_key=PK,
        sort_key=SK,
    )


#: The GSI the migration shapes carry, to show an import keeps it.
BY_CUSTOMER = dynamodb.GlobalSecondaryIndexProps(
    index_name="byCustomer",
    partition_key=dynamodb.Attribute(name="customer", type=dynamodb.AttributeType.STRING),
)


@pytest.fixture(scope="package")
def migration_prepare(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Step 1 of a cross-account migration: the target stack holds the bucket only (no export yet); the
    replicator's mapping is created disabled."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Orders",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
            existing_source=_orders_source(),
            global_secondary_indexes=[BY_CUSTOMER],
            time_to_live_attribute="expiresAt",
        )

    return synth(_out(tmp_path_factory, "migration_prepare"), build)


@pytest.fixture(scope="package")
def migration_import(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Step 2: the export is done; the replica table is created from it. The export runs as one named role."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Orders",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[
                TableLocation(
                    region="eu-west-1",
                    account=OTHER_ACCOUNT,
                    migration=MigrationOptions(export_arn=EXPORT_ARN, exporter_role_arn=EXPORTER_ROLE_ARN),
                )
            ],
            existing_source=_orders_source(),
            global_secondary_indexes=[BY_CUSTOMER],
            time_to_live_attribute="expiresAt",
        )

    return synth(_out(tmp_path_factory, "migration_import"), build)


@pytest.fixture(scope="package")
def kinesis_source(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A new source table streaming to a Kinesis data stream (14-day retention), a same-account replica and a
    cross-account replica."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Events",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            sort_key=SK,
            change_source=ChangeSource.KINESIS,
            kinesis=KinesisOptions(retention=cdk.Duration.days(14)),
        )

    return synth(_out(tmp_path_factory, "kinesis_source"), build)


@pytest.fixture(scope="package")
def kinesis_migration(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """An existing source that already streams to a data stream, loaded into another account from an
    export: the long-load case Kinesis is for."""

    def build(app: cdk.App) -> ReplicatedTable:
        return ReplicatedTable(
            app,
            "Orders",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
            existing_source=_orders_source(),
            time_to_live_attribute="expiresAt",
            change_source=ChangeSource.KINESIS,
            kinesis=KinesisOptions(stream_arn=DATA_STREAM_ARN, retention=cdk.Duration.days(30)),
        )

    return synth(_out(tmp_path_factory, "kinesis_migration"), build)


ALL_SHAPES = (
    "one_way",
    "imported",
    "cross_account",
    "resource_policy",
    "multi_active",
    "migration_prepare",
    "migration_import",
    "kinesis_source",
    "kinesis_migration",
)


@pytest.fixture(params=ALL_SHAPES)
def any_shape(request: pytest.FixtureRequest) -> Synthesized:
    """Each shape in turn (for checks that hold for every synthesized stack)."""
    return request.getfixturevalue(request.param)
