"""Physical names and ARNs every copy, stack and command derives the same way, with no ``aws_cdk`` import.

The constructs name tables, roles, stacks and buckets deterministically so that other stacks, accounts and
the command line can address them without exports; the command line imports these functions from here
(``cdk_replication.naming`` adds the synth-time validators, which need ``aws_cdk``).
"""

from __future__ import annotations

import hashlib
import re

#: IAM role names are at most 64 characters.
_MAX_ROLE_NAME = 64
#: CloudFormation stack names are at most 128 characters.
_MAX_STACK_NAME = 128
#: S3 bucket names are at most 63 characters.
_MAX_BUCKET_NAME = 63
#: Lambda function names are at most 64 characters of A-Z a-z 0-9 - _.
_MAX_FUNCTION_NAME = 64


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
    return f"{name[: limit - 9]}-{_digest(name)}"


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


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


def replicator_function_name(table_name: str, region: str) -> str:
    """Physical name of the function of the replicator reading ``table_name`` in ``region``:
    ``<table>-<region>-replicator``, at most 64 characters.

    Unique per account and region because a table name is; deterministic so that a dashboard in another
    region names the function literally (CloudFormation cannot reference another region's stack). A table
    name's ``.`` (which Lambda refuses) becomes ``-`` with a hash of the real name appended, so tables
    ``a.b`` and ``a-b`` keep distinct functions; a name too long is shortened with a hash, like role names.
    """
    name = f"{table_name}-{region}-replicator"
    safe = re.sub(r"[^A-Za-z0-9_\-]", "-", name)
    if safe != name:
        safe = f"{safe[: _MAX_FUNCTION_NAME - 9]}-{_digest(name)}"
    return _bounded(safe, _MAX_FUNCTION_NAME)


def writer_role_name(table_name: str, region: str, source_account: str, source_region: str) -> str:
    """Physical name of the role in a target account that one source replicator assumes to write one table."""
    return _bounded(_sanitize(f"{table_name}-{region}-writer-{source_account}-{source_region}"), _MAX_ROLE_NAME)


def role_arn(partition: str, account: str, role_name: str) -> str:
    """ARN of a role by name (IAM is global, so no region)."""
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def table_arn(partition: str, region: str, account: str, table_name: str) -> str:
    """ARN of a table; ``partition`` may be the ``Aws.PARTITION`` token."""
    return f"arn:{partition}:dynamodb:{region}:{account}:table/{table_name}"


def migration_bucket_name(table_name: str, account: str, region: str) -> str:
    """Deterministic name of the migration bucket of ``table_name`` in ``account``/``region``.

    ``<table>-migration-<account>-<region>``, lower-cased, characters S3 refuses replaced by ``-``, and
    shortened with a stable hash beyond 63 characters. The account and region are in the name because
    bucket names are global; the CLI and the source side derive it without reading the target stack.
    """
    base = re.sub(r"[^a-z0-9\-]+", "-", f"{table_name}-migration-{account}-{region}".lower())
    base = re.sub(r"-{2,}", "-", base).strip("-")
    return _bounded(base, _MAX_BUCKET_NAME)


#: First segment of the default export prefix ``cdk-replication/<source table>/<replica table>``.
MIGRATION_PREFIX_ROOT = "cdk-replication"


def migration_export_prefix(source_table: str, replica_table: str) -> str:
    """The default key prefix an export of ``source_table`` for ``replica_table`` is written under: the only
    prefix the migration bucket lets the source account write, and ``migrate``'s default ``--s3-prefix``."""
    return f"{MIGRATION_PREFIX_ROOT}/{source_table}/{replica_table}"


_KINESIS_STREAM_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z\-]*):kinesis:(?P<region>[a-z0-9\-]+):(?P<account>\d{12}):stream/"
    r"(?P<name>[a-zA-Z0-9_.\-]{1,128})$"
)


def parse_kinesis_stream_arn(arn: object) -> dict[str, str] | None:
    """``partition``, ``region``, ``account`` and ``name`` of a Kinesis data stream ARN, or ``None`` if
    ``arn`` is not one."""
    match = _KINESIS_STREAM_ARN_RE.match(arn) if isinstance(arn, str) else None
    return match.groupdict() if match else None


#: The root of every SSM parameter the constructs publish (``/cdk-replication/<table>/...``).
PARAMETER_ROOT = "/cdk-replication"
#: The ``version`` of the published replicator document (``replicator_parameter_name``); a reader refuses others.
REPLICATOR_DOCUMENT_VERSION = 1


def status_parameter_name(table_name: str) -> str:
    """The SSM parameter holding a copy's ``LocationStatus`` (``ACTIVE``/``JOINING``/``LEAVING``), in the
    stack (account, region) of that copy: ``/cdk-replication/<table>/status``."""
    return f"{PARAMETER_ROOT}/{table_name}/status"


def replicator_parameter_name(table_name: str) -> str:
    """The SSM parameter holding the deployed configuration of the replicator that reads ``table_name`` (its
    JSON document: mode, source, function, targets with their status), in that table's (the writer's) stack:
    ``/cdk-replication/<table>/replicator``."""
    return f"{PARAMETER_ROOT}/{table_name}/replicator"


def parameter_arn(name: str, region: str, account: str) -> str:
    """The ARN IAM evaluates for a parameter (SSM drops the name's leading slash)."""
    return f"arn:{partition_for_region(region)}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"

