"""A masked, filtered cross-account replica (issue 15) for the end-to-end leak test: production
(111111111111/us-west-2) to development (222222222222/us-east-1), active customers only, emails hashed,
addresses removed, support notes dropped. ``MaskedCustomers`` is one-way through the writer role (the
default); ``MaskedAccounts`` hashes its partition key too (the rotation test).
"""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import Filter, Mask, ReplicaTransform, ReplicatedTable, ReplicatorOptions, TableLocation

SOURCE_ACCOUNT = "111111111111"
REPLICA_ACCOUNT = "222222222222"


def _transform(hash_key: bool) -> ReplicaTransform:
    masks = {"email": Mask.hmac(), "address": Mask.remove()}
    if hash_key:
        masks["pk"] = Mask.hmac()
    return ReplicaTransform(filter=Filter.eq("status", "active"), drop=["notes"], masks=masks)


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    for name, hash_key in (("MaskedCustomers", False), ("MaskedAccounts", True)):
        ReplicatedTable(
            app,
            name,
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, table_name=name),
            replicas=[TableLocation(region="us-east-1", account=REPLICA_ACCOUNT, transform=_transform(hash_key))],
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            # Small batches: a workload of a few hundred records spans many, for the faults to act on.
            replicator=ReplicatorOptions(batch_size=20),
        )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
