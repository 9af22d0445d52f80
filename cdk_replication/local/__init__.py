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

__all__ = [
    "DEFAULT_ACCOUNT",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "LocalCredentials",
    "credentials_for_account",
    "find_installation",
]
