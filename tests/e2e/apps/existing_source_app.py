"""A ReplicatedTable whose source table exists already (created outside CDK, as most users start)."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ExistingSource, ReplicatedTable, TableLocation

app = cdk.App()
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
app.synth()
