"""Deterministic physical names and ARNs, and validation of the identifiers they are built from.

Names must be derivable in every stack of a topology without cross-stack references (CloudFormation exports
cannot cross regions), so everything here is a pure function of construct ids, regions, accounts and table
names.
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import Token

from .errors import ReplicationConfigError

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")
_STREAM_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z\-]*):dynamodb:(?P<region>[^:]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.\-]{3,255})/stream/(?P<label>.+)$"
)
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:kms:(?P<region>[^:]+):(?P<account>\d{12}):key/[A-Za-z0-9\-]+$")
#: IAM role names are at most 64 characters.
_MAX_ROLE_NAME = 64
#: CloudFormation stack names are at most 128 characters.
_MAX_STACK_NAME = 128


def require_region(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal AWS region name, else raise naming ``what``."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
            f"{what} is {value!r}, not a literal region (tokens and region-agnostic stacks cannot be used: "
            "the replicator's environment and the stack layout need the region at synth time)",
            f'pass the region as a string, e.g. "us-east-1"',
        )
    if not _REGION_RE.match(value):
        raise ReplicationConfigError(path, f"{what} {value!r} is not an AWS region name", 'use e.g. "us-west-2"')
    return value


def require_account(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal 12-digit account id, else raise naming ``what``."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
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
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
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
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
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


def partition_for_region(region: str) -> str:
    """The AWS partition of ``region`` as a literal (for values that must not be tokens, e.g. env vars)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def _bounded(name: str, limit: int) -> str:
    """``name`` if it fits ``limit``; otherwise a truncated prefix plus a stable hash of the full name."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-]", "-", text)


def stack_name(base: str, region: str, account: str, *, with_account: bool) -> str:
    """``<base>-<region>``, or ``<base>-<account>-<region>`` when one region hosts stacks of several accounts."""
    parts = [base, account, region] if with_account else [base, region]
    return _bounded(_sanitize("-".join(parts)), _MAX_STACK_NAME)


def replicator_role_name(table_name: str, region: str) -> str:
    """Physical name of the role of the replicator reading ``table_name`` in ``region``.

    Unique per account (IAM names are account-wide) because a table name is unique per account and region.
    Deterministic so that a writer role or resource policy in another account can name exactly this role.
    """
    return _bounded(_sanitize(f"{table_name}-{region}-replicator"), _MAX_ROLE_NAME)


def writer_role_name(table_name: str, region: str, source_account: str, source_region: str) -> str:
    """Physical name of the role in a target account that one source replicator assumes to write one table."""
    return _bounded(_sanitize(f"{table_name}-{region}-writer-{source_account}-{source_region}"), _MAX_ROLE_NAME)


def role_arn(partition: str, account: str, role_name: str) -> str:
    """ARN of a role by name (IAM is global, so no region)."""
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def table_arn(partition: str, region: str, account: str, table_name: str) -> str:
    """ARN of a table; ``partition`` may be the ``Aws.PARTITION`` token."""
    return f"arn:{partition}:dynamodb:{region}:{account}:table/{table_name}"


#: S3 bucket names are 3-63 characters of a-z 0-9 . - and start and end with a letter or digit.
_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MAX_BUCKET_NAME = 63


def migration_bucket_name(table_name: str, account: str, region: str) -> str:
    """Deterministic name of the migration bucket of ``table_name`` in ``account``/``region``.

    ``<table>-migration-<account>-<region>``, lower-cased, characters S3 refuses replaced by ``-``, and
    shortened with a stable hash beyond 63 characters. The account and region are in the name because
    bucket names are global; the CLI and the source side derive it without reading the target stack.
    """
    base = re.sub(r"[^a-z0-9\-]+", "-", f"{table_name}-migration-{account}-{region}".lower())
    base = re.sub(r"-{2,}", "-", base).strip("-")
    return _bounded(base, _MAX_BUCKET_NAME)


def require_bucket_name(path: str, value: object, what: str) -> str:
    """Return ``value`` if it is a literal S3 bucket name that S3 accepts, else raise naming ``what``."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
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
