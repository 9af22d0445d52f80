"""A ReplicatedTable over an existing source table keyed (CustomerId, OrderId), declared with its partition key
only: the mistake issue 10 defect 7 describes. The replica is created with the declared key (CustomerId)."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ExistingSource, ReplicatedTable, ReplicatorOptions, TableLocation


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    ReplicatedTable(
        app,
        "LegacyOrders",
        source=TableLocation(region="us-east-2", account="666666666666", table_name="LegacyOrders"),
        replicas=[TableLocation(region="ca-central-1")],
        # Wrong on purpose: the table's sort key OrderId is left out.
        partition_key=dynamodb.Attribute(name="CustomerId", type=dynamodb.AttributeType.STRING),
        existing_source=ExistingSource(
            stream_arn="arn:aws:dynamodb:us-east-2:666666666666:table/LegacyOrders/stream/2024-01-01T00:00:00.000",
            stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        ),
        # Few retries, so the failed records reach the failure queue quickly.
        replicator=ReplicatorOptions(retry_attempts=1),
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
