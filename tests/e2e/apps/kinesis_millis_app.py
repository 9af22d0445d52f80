"""A source table streaming to Kinesis with MILLISECOND change times (an existing table's destination may
be set up so), composed from the library's pieces: writes within one millisecond share a timestamp and the
replicator must order them by their images."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis

from cdk_replication import (
    ChangeSource,
    KeySchema,
    ReplicaTable,
    ReplicationTarget,
    Replicator,
    ReplicatorOptions,
    ResolvedTable,
    TableOptions,
)

ACCOUNT = "444444444444"
SOURCE = ResolvedTable("Millis", "ap-south-1", ACCOUNT)
REPLICA = ResolvedTable("Millis", "ap-northeast-1", ACCOUNT)
KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    replica_stack = cdk.Stack(app, "MillisReplica", env=cdk.Environment(account=ACCOUNT, region=REPLICA.region))
    ReplicaTable(replica_stack, "Replica", table_name=REPLICA.table_name,
                 options=TableOptions(partition_key=KEY, time_to_live_attribute="_rep_expiresAt"))
    stack = cdk.Stack(app, "MillisSource", env=cdk.Environment(account=ACCOUNT, region=SOURCE.region))
    stream = kinesis.Stream(stack, "Changes", stream_mode=kinesis.StreamMode.ON_DEMAND,
                            encryption=kinesis.StreamEncryption.MANAGED)
    dynamodb.Table(
        stack, "Source", table_name=SOURCE.table_name, partition_key=KEY,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        kinesis_stream=stream, kinesis_precision_timestamp=dynamodb.ApproximateCreationDateTimePrecision.MILLISECOND,
    )
    Replicator(
        stack, "Replicator", source=SOURCE, stream_arn=stream.stream_arn, key=KeySchema("pk"),
        targets=[ReplicationTarget(REPLICA)], change_source=ChangeSource.KINESIS, ttl_attribute="_rep_expiresAt",
        options=ReplicatorOptions(batch_size=4),
    )


if __name__ == "__main__":
    cdk_app = cdk.App()
    build(cdk_app)
    cdk_app.synth()
