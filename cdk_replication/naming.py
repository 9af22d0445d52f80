"""Deterministic physical names and ARNs, and validation of the identifiers they are built from.

Names must be derivable in every stack of a topology without cross-stack references (CloudFormation exports
cannot cross regions), so everything here is a pure function of construct ids, regions, accounts and table
names.
"""

from __future__ import annotations

import re

from aws_cdk import Token

from .errors import ReplicationConfigError
from .physical_names import (  # noqa: F401 - re-exported: the constructs import every name from here
    migration_bucket_name,
    migration_export_prefix,
    partition_for_region,
    replicator_function_name,
    replicator_role_name,
    role_arn,
    stack_name,
    table_arn,
    writer_role_name,
)

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")
_STREAM_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z\-]*):dynamodb:(?P<region>[^:]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.\-]{3,255})/stream/(?P<label>.+)$"
)
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:kms:(?P<region>[^:]+):(?P<account>\d{12}):key/[A-Za-z0-9\-]+$")


def require_literal(path: str, value: object, problem: str, fix: str) -> str:
    """``value`` if it is a literal string (not a token), else raise with ``problem`` (which names the value)
    and ``fix``."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(path, problem, fix)
    return value


def require_region(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal AWS region name, else raise naming ``what``."""
    value = require_literal(
        path,
        value,
        f"{what} is {value!r}, not a literal region (tokens and region-agnostic stacks cannot be used: "
        "the replicator's environment and the stack layout need the region at synth time)",
        'pass the region as a string, e.g. "us-east-1"',
    )
    if not _REGION_RE.match(value):
        raise ReplicationConfigError(path, f"{what} {value!r} is not an AWS region name", 'use e.g. "us-west-2"')
    return value


def require_account(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal 12-digit account id, else raise naming ``what``."""
    value = require_literal(
        path,
        value,
        f"{what} is {value!r}, not a literal account id (tokens such as Aws.ACCOUNT_ID and "
        "environment-agnostic stacks cannot be used: IAM policies and the replicator's environment "
        "name the account at synth time)",
        'pass the 12-digit account id as a string, e.g. "111111111111"',
    )
    if not _ACCOUNT_RE.match(value):
        raise ReplicationConfigError(path, f"{what} {value!r} is not a 12-digit account id", 'use e.g. "111111111111"')
    return value


def require_table_name(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a valid literal DynamoDB table name, else raise naming ``what``."""
    value = require_literal(
        path,
        value,
        f"{what} is {value!r}, not a literal table name (other stacks and the replicator must know it "
        "at synth time)",
        "pass the table name as a string",
    )
    if not _TABLE_NAME_RE.match(value):
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} is not a valid DynamoDB table name",
            "use 3-255 characters from A-Z a-z 0-9 _ . -",
        )
    return value


def parse_stream_arn(path: str, value: object) -> dict[str, str]:
    """Split a literal DynamoDB stream ARN into partition, region, account, table and label."""
    value = require_literal(
        path,
        value,
        f"existing source stream_arn is {value!r}, not a literal ARN",
        "copy the table's LatestStreamArn (aws dynamodb describe-table) into the props as a string",
    )
    match = _STREAM_ARN_RE.match(value)
    if not match:
        raise ReplicationConfigError(
            path,
            f"existing source stream_arn {value!r} is not a DynamoDB stream ARN",
            "use the table's LatestStreamArn, arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>",
        )
    return match.groupdict()


#: Lambda function names: 1-64 characters of A-Z a-z 0-9 - _ (the name, not an ARN).
_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def require_function_name(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal Lambda function name, else raise naming ``what``."""
    value = require_literal(
        path,
        value,
        f"{what} is {value!r}, not a literal function name (alarms and dashboards in other stacks name it)",
        "pass the function name as a string, or leave it unset for a generated name",
    )
    if not _FUNCTION_NAME_RE.match(value):
        raise ReplicationConfigError(
            path, f"{what} {value!r} is not a Lambda function name", "use 1-64 characters from A-Z a-z 0-9 - _"
        )
    return value


def require_kms_key_arn(path: str, value: str, what: str, region: str, account: str) -> str:
    """Return ``value`` if it is a literal KMS key ARN in ``region``/``account``, else raise."""
    if Token.is_unresolved(value) or not _KMS_KEY_ARN_RE.match(value):
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} is not a literal KMS key ARN",
            "pass arn:aws:kms:<region>:<account>:key/<key-id> (aliases cannot be used in IAM policies)",
        )
    match = _KMS_KEY_ARN_RE.match(value)
    assert match is not None
    if match["region"] != region or match["account"] != account:
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} is in {match['account']}/{match['region']}, but the table is in {account}/{region}",
            "a table can only be encrypted with a key in its own account and region",
        )
    return value


#: S3 bucket names are 3-63 characters of a-z 0-9 . - and start and end with a letter or digit.
_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def require_bucket_name(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal S3 bucket name that S3 accepts, else raise naming ``what``."""
    value = require_literal(
        path,
        value,
        f"{what} is {value!r}, not a literal bucket name (the source account's export and the import name "
        "it at synth time)",
        "pass the bucket name as a string, or leave it unset for the deterministic default",
    )
    if (
        not _BUCKET_NAME_RE.match(value)
        or ".." in value
        or ".-" in value
        or "-." in value
        or re.match(r"^\d+\.\d+\.\d+\.\d+$", value)
        or value.startswith("xn--")
        or value.endswith("-s3alias")
    ):
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} is not a valid S3 bucket name",
            "use 3-63 characters from a-z 0-9 . - starting and ending with a letter or digit",
        )
    return value
