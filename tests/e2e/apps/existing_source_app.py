"""A ReplicatedTable whose source table exists already (created outside CDK, as most users start)."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ExistingSource, ReplicatedTable, TableLocation


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    ReplicatedTable(
        app,
        "Legacy",
        source=TableLocation(region="us-east-2", account="666666666666", table_name="Legacy"),
        replicas=[TableLocation(region="ca-central-1")],
        partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
        existing_source=ExistingSource(
            stream_arn="arn:aws:dynamodb:us-east-2:666666666666:table/Legacy/stream/2024-01-01T00:00:00.000",
            stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        ),
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
