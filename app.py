#!/usr/bin/env python3
"""The tutorial example: an ``Employee`` table keyed by ``Id`` (number), written in one region and copied
to another, one stack per region.

Every location comes from CDK context, with defaults that let ``cdk synth`` run without AWS credentials:

    cdk synth                                        # Employee-us-west-2 (source) + Employee-us-east-1 (replica)
    cdk synth -c sourceRegion=eu-west-1 -c replicaRegion=eu-central-1 -c account=123456789012
    cdk synth -c replicaAccount=222222222222         # replica in another account (writer role there)
    cdk synth -c changeSource=KINESIS                # changes through a Kinesis data stream (long loads)

Context keys: ``account`` (default 111111111111), ``sourceRegion`` (us-west-2), ``replicaRegion``
(us-east-1), ``replicaAccount`` (default: ``account``), ``tableName`` (Employee), ``batchSize`` (the
replicator's maximum batch, default the library's), ``changeSource`` (``DYNAMODB_STREAMS`` or ``KINESIS``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ChangeSource, ReplicatedTable, ReplicatorOptions, TableLocation

DEFAULT_ACCOUNT = "111111111111"


def build_app(app: cdk.App) -> ReplicatedTable:
    """Add the example's stacks to ``app`` from its context and return the construct."""

    def context(key: str, default: str) -> str:
        value = app.node.try_get_context(key)
        return str(value) if value is not None else default

    account = context("account", DEFAULT_ACCOUNT)
    table_name = context("tableName", "Employee")
    batch_size = app.node.try_get_context("batchSize")
    options = ReplicatorOptions(batch_size=int(batch_size)) if batch_size is not None else None
    source_name = context("changeSource", ChangeSource.DYNAMODB_STREAMS.value).upper()
    if source_name not in ChangeSource.__members__:
        raise SystemExit(f"context changeSource={source_name!r}: use one of {', '.join(ChangeSource.__members__)}")
    return ReplicatedTable(
        app,
        table_name,
        source=TableLocation(region=context("sourceRegion", "us-west-2"), account=account, table_name=table_name),
        replicas=[TableLocation(region=context("replicaRegion", "us-east-1"), account=context("replicaAccount", account))],
        partition_key=dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.NUMBER),
        replicator=options,
        change_source=ChangeSource[source_name],
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build_app(cdk_app)
    cdk_app.synth()
