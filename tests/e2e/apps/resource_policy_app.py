"""Cross-account replication through the replica table's resource policy (no writer role): the replicator signs
with its own account's credentials and names the replica by its table ARN, for the end-to-end tests.

One-way topologies from 111111111111/us-west-2 to 222222222222/us-east-1, one per test that needs fresh
tables (``Ledger``, ``LedgerDenied``, ``LedgerWrongPrincipal``), and ``Wallets``, multi-active
between 111111111111/us-west-2 and 222222222222/eu-west-1. Stacks are ``<name>-us-west-2`` and
``<name>-222222222222-<region>``.
"""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import CrossAccountAccess, ReplicatedTable, ReplicationMode, TableLocation

SOURCE_ACCOUNT = "111111111111"
REPLICA_ACCOUNT = "222222222222"
ONE_WAY = ("Ledger", "LedgerDenied", "LedgerWrongPrincipal")


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    for name in ONE_WAY:
        ReplicatedTable(
            app,
            name,
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name=name),
            replicas=[TableLocation(region="us-east-1", account=REPLICA_ACCOUNT)],
            partition_key=dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.NUMBER),
            cross_account_access=CrossAccountAccess.RESOURCE_POLICY,
        )
    ReplicatedTable(
        app,
        "Wallets",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name="Wallets"),
        replicas=[TableLocation(region="eu-west-1", account=REPLICA_ACCOUNT)],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        mode=ReplicationMode.MULTI_ACTIVE,
        cross_account_access=CrossAccountAccess.RESOURCE_POLICY,
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
