"""AWS-free runtime for demos and tests: DynamoDB Local, a local deploy of a cloud assembly, and an
emulation of Lambda's event source mapping for DynamoDB Streams."""

from cdk_replication.local.dynamodb_local import (
    DEFAULT_ACCOUNT,
    DynamoDBLocal,
    DynamoDBLocalError,
    LocalCredentials,
    credentials_for_account,
    find_installation,
)
from cdk_replication.local.event_source_mapping import MappingSettings, MappingStats, StreamEventSourceMapping
from cdk_replication.local.faults import FunctionFaults, WriteFault
from cdk_replication.local.lambda_runtime import FunctionInitError, InvocationResult, LocalFunction
from cdk_replication.local.queue import LocalQueue, QueueMessage

__all__ = [
    "DEFAULT_ACCOUNT",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "FunctionFaults",
    "FunctionInitError",
    "InvocationResult",
    "LocalCredentials",
    "LocalFunction",
    "LocalQueue",
    "MappingSettings",
    "MappingStats",
    "QueueMessage",
    "StreamEventSourceMapping",
    "WriteFault",
    "credentials_for_account",
    "find_installation",
]
