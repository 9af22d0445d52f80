"""Package-scoped synthesized apps, one per stack shape, shared by the construct tests.

Each shape is one ``ReplicatedTable`` (construct id + props) in :data:`SHAPES`; a fixture of the same name
synthesizes it once, with cdk-nag attached (``construct_helpers.synth``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import (
    ChangeSource,
    CrossAccountAccess,
    ExistingSource,
    FailureDestination,
    KinesisOptions,
    LocationStatus,
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


def _source(**location: Any) -> TableLocation:
    """The source location every shape uses: us-west-2 of SOURCE_ACCOUNT."""
    return TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, **location)


#: The existing source of the imported and migration shapes: Orders (Id, Version) in us-west-2.
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

#: The two deploys of a cross-account migration share everything but the replica's MigrationOptions.
_MIGRATION = {"existing_source": _orders_source, "global_secondary_indexes": [BY_CUSTOMER],
              "time_to_live_attribute": "expiresAt"}


def _props(**props: Any) -> Callable[[], dict[str, Any]]:
    """Props evaluated when the fixture runs (callables among the values are called then)."""
    return lambda: {name: value() if callable(value) else value for name, value in props.items()}


#: name -> (docstring, construct id, props).
SHAPES: dict[str, tuple[str, str, Callable[[], dict[str, Any]]]] = {
    "one_way": (
        "The tutorial shape with defaults only: new source in us-west-2, replica in us-east-1.",
        "Employee",
        _props(source=_source(), replicas=[TableLocation(region="us-east-1")], partition_key=PK),
    ),
    "imported": (
        "An existing CMK-encrypted source table with a sort key, a CMK replica and a same-region audit copy.",
        "Orders",
        _props(
            source=_source(encryption_key_arn=SOURCE_KEY_ARN),
            replicas=[
                TableLocation(region="us-east-1", encryption_key_arn=REPLICA_KEY_ARN),
                TableLocation(region="us-west-2", table_name="OrdersAudit", encryption_key_arn=SOURCE_KEY_ARN),
            ],
            existing_source=_orders_source,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        ),
    ),
    "cross_account": (
        "Replica in another account through a writer role (the default), with a customer-managed key.",
        "Employee",
        _props(
            source=_source(encryption_key_arn=SOURCE_KEY_ARN),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, encryption_key_arn=FOREIGN_KEY_ARN)],
            partition_key=PK,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        ),
    ),
    "resource_policy": (
        "Replica in another account through a table resource policy.",
        "Employee",
        _props(
            source=_source(),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            cross_account_access=CrossAccountAccess.RESOURCE_POLICY,
        ),
    ),
    "multi_active": (
        "Three writers, one of them in another account.",
        "Profiles",
        _props(
            source=_source(),
            replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            sort_key=SK,
            mode=ReplicationMode.MULTI_ACTIVE,
        ),
    ),
    "migration_prepare": (
        "Step 1 of a cross-account migration: the target stack holds the bucket only (no export yet); the "
        "replicator's mapping is created disabled.",
        "Orders",
        _props(
            source=_source(),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
            **_MIGRATION,
        ),
    ),
    "migration_import": (
        "Step 2: the export is done; the replica table is created from it. The export runs as one named role.",
        "Orders",
        _props(
            source=_source(),
            replicas=[
                TableLocation(
                    region="eu-west-1",
                    account=OTHER_ACCOUNT,
                    migration=MigrationOptions(export_arn=EXPORT_ARN, exporter_role_arn=EXPORTER_ROLE_ARN),
                )
            ],
            **_MIGRATION,
        ),
    ),
    "kinesis_source": (
        "A new source table streaming to a Kinesis data stream (14-day retention), a same-account replica and "
        "a cross-account replica.",
        "Events",
        _props(
            source=_source(),
            replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)],
            partition_key=PK,
            sort_key=SK,
            change_source=ChangeSource.KINESIS,
            kinesis=lambda: KinesisOptions(retention=cdk.Duration.days(14)),
        ),
    ),
    "kinesis_migration": (
        "An existing source that already streams to a data stream, loaded into another account from an "
        "export: the long-load case Kinesis is for.",
        "Orders",
        _props(
            source=_source(),
            replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, migration=MigrationOptions())],
            existing_source=_orders_source,
            time_to_live_attribute="expiresAt",
            change_source=ChangeSource.KINESIS,
            kinesis=lambda: KinesisOptions(stream_arn=DATA_STREAM_ARN, retention=cdk.Duration.days(30)),
        ),
    ),
    "joining_replica": (
        "Growing a running one-way topology (issue 14): an ACTIVE replica, a JOINING one in another account and a "
        "JOINING one waiting for its export (not yet a target; the mapping keeps running).",
        "Employee",
        _props(
            source=_source(),
            replicas=[
                TableLocation(region="us-east-1"),
                TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, status=LocationStatus.JOINING),
                TableLocation(region="eu-central-1", status=LocationStatus.JOINING, migration=MigrationOptions()),
            ],
            partition_key=PK,
        ),
    ),
    "multi_active_changing": (
        "A multi-active topology mid-change: one region LEAVING while another is JOINING.",
        "Profiles",
        _props(
            source=_source(),
            replicas=[TableLocation(region="us-east-1", status=LocationStatus.LEAVING),
                      TableLocation(region="eu-west-1", status=LocationStatus.JOINING)],
            partition_key=PK,
            mode=ReplicationMode.MULTI_ACTIVE,
        ),
    ),
    "sqs_destination": (
        "The one-way shape with the SQS failure destination instead of the default S3 bucket.",
        "Employee",
        _props(
            source=_source(),
            replicas=[TableLocation(region="us-east-1")],
            partition_key=PK,
            failure_destination=FailureDestination.sqs,
        ),
    ),
}

ALL_SHAPES = tuple(SHAPES)


def _shape_fixture(name: str) -> Any:
    doc, construct_id, props = SHAPES[name]

    @pytest.fixture(scope="package", name=name)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
        return synth(tmp_path_factory.mktemp(name), lambda app: ReplicatedTable(app, construct_id, **props()))

    fixture.__doc__ = doc
    return fixture


# One module-level fixture per shape, so tests request them by name (pytest finds fixtures in globals).
for _name in SHAPES:
    globals()[f"_fixture_{_name}"] = _shape_fixture(_name)


@pytest.fixture(params=ALL_SHAPES)
def any_shape(request: pytest.FixtureRequest) -> Synthesized:
    """Each shape in turn (for checks that hold for every synthesized stack)."""
    return request.getfixturevalue(request.param)
