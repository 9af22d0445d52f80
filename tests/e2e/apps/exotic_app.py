"""A ReplicatedTable keyed by a binary partition key and a string sort key, in its own account and regions,
for the end-to-end tests of exotic values (the example app's key is a number)."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ReplicatedTable, TableLocation


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    ReplicatedTable(
        app,
        "Exotic",
        source=TableLocation(region="eu-west-1", account="333333333333", table_name="Exotic"),
        replicas=[TableLocation(region="eu-central-1")],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.BINARY),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
