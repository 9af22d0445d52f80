"""A multi-active ReplicatedTable in two regions (every region is a writer), for the end-to-end tests.

The context value ``tableName`` names the table (and the construct). Default: ``Orders``."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ReplicatedTable, ReplicationMode, TableLocation


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    name = app.node.try_get_context("tableName") or "Orders"
    ReplicatedTable(
        app,
        name,
        source=TableLocation(region="us-west-2", account="444444444444", table_name=name),
        replicas=[TableLocation(region="eu-west-1")],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        mode=ReplicationMode.MULTI_ACTIVE,
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
