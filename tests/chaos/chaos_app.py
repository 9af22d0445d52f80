#!/usr/bin/env python3
"""The CDK app the chaos suite deploys onto DynamoDB Local: one ``ReplicatedTable`` in MULTI_ACTIVE mode.

Three writer regions, a string partition key ``pk`` and every other setting at the library's default (the
conflict attribute ``updatedAt`` with the TIMESTAMP strategy, batch size, retries, bisection, record age,
failure buckets), so the suite exercises what a user gets. Synthesized once per test session by
``tests/chaos/conftest.py`` (``cdk_replication.local.synthesize`` runs this file).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Synthesis runs this file with the app's folder as working directory; the editable install of
# cdk_replication is only found reliably from the checkout, so put the checkout first.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_dynamodb as dynamodb  # noqa: E402

from cdk_replication import ReplicatedTable, ReplicationMode, TableLocation  # noqa: E402

#: The writer regions, in the order the suite numbers them. Region ids also break ties (greatest wins).
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ACCOUNT = "111111111111"
TABLE = "Chaos"


def build(app: cdk.App) -> ReplicatedTable:
    """Add the chaos topology's stacks to ``app``."""
    return ReplicatedTable(
        app,
        TABLE,
        source=TableLocation(region=REGIONS[0], account=ACCOUNT),
        replicas=[TableLocation(region=region) for region in REGIONS[1:]],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        mode=ReplicationMode.MULTI_ACTIVE,
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
