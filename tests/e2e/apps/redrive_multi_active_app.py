"""A multi-active ReplicatedTable in two regions (every region is a writer), for the redrive end-to-end test:
multi_active_app.py with a table of its own, since the session's DynamoDB Local keeps every table."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ReplicatedTable, ReplicationMode, TableLocation


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    ReplicatedTable(
        app,
        "RedriveOrders",
        source=TableLocation(region="us-west-2", account="444444444444", table_name="RedriveOrders"),
        replicas=[TableLocation(region="eu-west-1")],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        mode=ReplicationMode.MULTI_ACTIVE,
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
