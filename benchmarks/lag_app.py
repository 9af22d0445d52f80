"""The CDK app of ``python -m benchmarks.lag``: an ``Employee`` table (keyed by ``Id``, a number) in three regions.

Context: ``mode`` = ``ONE_WAY`` (default: us-west-2 copied to us-east-1 and eu-west-1) or ``MULTI_ACTIVE`` (the
same three regions, every one a writer; the benchmark writes to us-west-2, whose replicator writes the two others).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ReplicatedTable, ReplicationMode, TableLocation

#: The benchmark's account, source region and the other two regions.
ACCOUNT = "111111111111"
SOURCE_REGION = "us-west-2"
OTHER_REGIONS = ("us-east-1", "eu-west-1")


def build(app: cdk.App) -> ReplicatedTable:
    """Add the stacks to ``app`` from its context ``mode``."""
    mode = str(app.node.try_get_context("mode") or "ONE_WAY").upper()
    return ReplicatedTable(
        app,
        "Employee",
        source=TableLocation(region=SOURCE_REGION, account=ACCOUNT, table_name="Employee"),
        replicas=[TableLocation(region=region) for region in OTHER_REGIONS],
        partition_key=dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.NUMBER),
        mode=ReplicationMode[mode],
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
