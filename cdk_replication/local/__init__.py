"""AWS-free runtime for demos and tests: DynamoDB Local, a local deploy of a cloud assembly, and an
emulation of Lambda's event source mapping for DynamoDB Streams and Kinesis Data Streams, with a local
Kinesis (moto) and DynamoDB's Kinesis streaming destination.

Typical use in a test (see docs/local-runtime.md)::

    out = synthesize("app.py", tmp_path / "cdk.out")
    with DynamoDBLocal() as ddb, deploy(out, ddb) as deployment:
        ...write to deployment.table("Employee", region="us-west-2").client()...
        deployment.run_until_idle()
        assert compare_tables(...).equal
"""

from cdk_replication.local.dynamodb_local import (
    DEFAULT_ACCOUNT,
    DynamoDBLocal,
    DynamoDBLocalError,
    LocalCredentials,
    credentials_for_account,
    find_installation,
)
from cdk_replication.local.assembly import StackArtifact, read_assembly
from cdk_replication.local.bucket import BucketAccessDenied, BucketObject, LocalBucket, failure_object_key
from cdk_replication.local.compare import TableComparison, compare_tables
from cdk_replication.local.deploy import DeployedStack, LocalDeployment, LocalTable, deploy
from cdk_replication.local.event_source_mapping import (
    DynamoDBStreamSource,
    EventSource,
    EventSourceMapping,
    MappingSettings,
    MappingStats,
    RecordTiming,
    StreamEventSourceMapping,
)
from cdk_replication.local.kinesis import KinesisEventSourceMapping, KinesisStreamSource, LocalKinesis
from cdk_replication.local.kinesis_bridge import BridgeStats, KinesisStreamingDestination
from cdk_replication.local.faults import FunctionFaults, WriteFault
from cdk_replication.local.lambda_runtime import FunctionInitError, InvocationResult, LocalFunction
from cdk_replication.local.intrinsics import TemplateError
from cdk_replication.local.queue import LocalQueue, QueueMessage
from cdk_replication.local.gateway import Gateway, GatewayError, GatewayStats, Identity, Role
from cdk_replication.local.synth import SynthError, synthesize

__all__ = [
    "RecordTiming",
    "BridgeStats",
    "BucketAccessDenied",
    "BucketObject",
    "LocalBucket",
    "failure_object_key",
    "DynamoDBStreamSource",
    "EventSource",
    "EventSourceMapping",
    "KinesisEventSourceMapping",
    "KinesisStreamSource",
    "KinesisStreamingDestination",
    "LocalKinesis",
    "DEFAULT_ACCOUNT",
    "DeployedStack",
    "LocalDeployment",
    "LocalTable",
    "StackArtifact",
    "SynthError",
    "TemplateError",
    "deploy",
    "read_assembly",
    "synthesize",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "FunctionFaults",
    "Gateway",
    "GatewayError",
    "GatewayStats",
    "Identity",
    "Role",
    "FunctionInitError",
    "InvocationResult",
    "LocalCredentials",
    "LocalFunction",
    "LocalQueue",
    "MappingSettings",
    "MappingStats",
    "QueueMessage",
    "StreamEventSourceMapping",
    "TableComparison",
    "WriteFault",
    "compare_tables",
    "credentials_for_account",
    "find_installation",
]
