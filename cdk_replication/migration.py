"""Initial load of a replica from a native export: the migration bucket and the replica's import source.

The order that makes an initial load correct (``DESIGN.md``, "Initial load and cut-over"): the source's stream
is on; the source is exported to S3 (``ExportTableToPointInTime``, which reads PITR data, not the table, so the
source's capacity is untouched); the replica table is created from that export; only then is the stream
applied from ``TRIM_HORIZON``. The pieces here, used by ``ReplicatedTable(replicas=[TableLocation(...,
migration=MigrationOptions(...))])`` or one by one:

* ``MigrationBucket`` - a bucket in the replica's account and region that only the source account's exporting
  principal may write to, under one prefix only;
* ``ExportImportSource`` - where one completed export lies, given to ``ReplicaTable(import_source=...)`` so
  CloudFormation creates the replica table with ``ImportSourceSpecification``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from . import defaults
from .errors import ReplicationConfigError
from .model import MigrationOptions  # noqa: F401 - its home is model.py; imported from here too
from .naming import require_account, require_bucket_name, require_kms_key_arn
from .permissions import acknowledge_nag

#: What ``ExportTableToPointInTime`` does in the bucket with the caller's credentials (the DynamoDB developer
#: guide, "Requesting a table export": s3:AbortMultipartUpload, s3:PutObject, s3:PutObjectAcl). PutObjectAcl
#: is part of AWS's documented minimum; with BUCKET_OWNER_ENFORCED ownership it can set no ACL other than
#: the bucket owner's full control, so it grants nothing more.
EXPORT_WRITE_ACTIONS: tuple[str, ...] = ("s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl")

#: Export ARNs as DescribeExport / ExportTableToPointInTime return them.
_EXPORT_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z\-]*):dynamodb:(?P<region>[a-z0-9\-]+):(?P<account>\d{12}):"
    r"table/(?P<table>[A-Za-z0-9_.\-]{3,255})/export/(?P<export_id>[A-Za-z0-9\-]{1,64})$"
)
_ROLE_ARN_RE = re.compile(r"^arn:(?P<partition>aws[a-z\-]*):iam::(?P<account>\d{12}):role/[\w+=,.@\-/]{1,512}$")
#: Key prefix: S3's "safe" characters (no wildcards, which would change the meaning of the policy's ARN).
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.'()\-/]+$")
#: ImportSourceSpecification.S3KeyPrefix is at most 1024 characters, and the import reads
#: ``<prefix>/AWSDynamoDB/<export id>/data/`` (up to 85 more).
_MAX_PREFIX = 900


def require_export_prefix(path: str, value: object, what: str = "export_prefix") -> str:
    """Return ``value`` if it can be the one key prefix an export may write under, else raise."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
            f"{what} is {value!r}, not a literal key prefix (the bucket policy and the import name it at synth time)",
            'pass a string such as "cdk-replication/orders/orders", or leave it unset for that default',
        )
    problems = []
    if not value:
        problems.append("is empty, which would let the exporter write anywhere in the bucket")
    elif len(value) > _MAX_PREFIX:
        problems.append(f"is {len(value)} characters long (at most {_MAX_PREFIX})")
    elif value.startswith("/") or value.endswith("/"):
        problems.append("starts or ends with '/'")
    elif not _PREFIX_RE.match(value):
        problems.append("has characters outside A-Z a-z 0-9 ! _ . ' ( ) - / (wildcards would widen the policy)")
    elif any(part in ("", ".", "..") for part in value.split("/")):
        problems.append("has an empty, '.' or '..' path segment")
    if problems:
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} {problems[0]}",
            "use a non-empty prefix of path segments without leading or trailing '/', e.g. "
            '"cdk-replication/orders/orders"',
        )
    return value


def parse_export_arn(path: str, value: object, what: str = "export_arn") -> dict[str, str]:
    """Split a literal DynamoDB export ARN into partition, region, account, table and export id."""
    if not isinstance(value, str) or Token.is_unresolved(value):
        raise ReplicationConfigError(
            path,
            f"{what} is {value!r}, not a literal ARN",
            "copy the ExportArn that export-table-to-point-in-time (or describe-export) printed",
        )
    match = _EXPORT_ARN_RE.match(value)
    if not match:
        raise ReplicationConfigError(
            path,
            f"{what} {value!r} is not a DynamoDB export ARN",
            "use the ExportArn, arn:aws:dynamodb:<region>:<account>:table/<source table>/export/<export id>",
        )
    return match.groupdict()


@dataclass(frozen=True)
class ExportImportSource:
    """Where a completed DynamoDB JSON export lies, for ``ReplicaTable(import_source=...)``.

    Attributes:
        bucket_name: the bucket the export was written to. Required.
        bucket_account: that bucket's owner; must be the replica table's account (CloudFormation imports
            with the deploying account's credentials). Required.
        export_prefix: the ``S3Prefix`` the export was requested with. Required.
        export_arn: the export's ARN; its id names the export's folder. Required.
        compression: Default: ``GZIP``.
    """

    bucket_name: str
    bucket_account: str
    export_prefix: str
    export_arn: str
    compression: dynamodb.InputCompressionType = defaults.IMPORT_COMPRESSION

    @property
    def data_prefix(self) -> str:
        """The key prefix of the export's data files, ``<prefix>/AWSDynamoDB/<export id>/data/``.

        The manifests beside ``data/`` are not items, so the import must read below it.
        """
        export_id = self.export_arn.rsplit("/", 1)[-1]
        return f"{self.export_prefix}/AWSDynamoDB/{export_id}/data/"

    def validate(self, path: str, table_account: str) -> None:
        """Raise ``ReplicationConfigError`` naming ``path`` if a table in ``table_account`` cannot import this."""
        require_bucket_name(path, self.bucket_name, "import bucket_name")
        require_account(path, self.bucket_account, "import bucket_account")
        require_export_prefix(path, self.export_prefix)
        parse_export_arn(path, self.export_arn)
        if self.bucket_account != table_account:
            raise ReplicationConfigError(
                path,
                f"the import bucket {self.bucket_name!r} is in account {self.bucket_account}, but the table is "
                f"created in account {table_account}",
                "export into a MigrationBucket in the replica table's own account (the import reads it with "
                "that account's credentials)",
            )
        if self.compression not in (
            dynamodb.InputCompressionType.GZIP,
            dynamodb.InputCompressionType.ZSTD,
            dynamodb.InputCompressionType.NONE,
        ):
            raise ReplicationConfigError(path, f"compression {self.compression!r} is unknown", "use GZIP, ZSTD or NONE")


class MigrationBucket(Construct):
    """An S3 bucket for a table export from another account, writable by that account under one prefix only.

    Properties (each one a decision; see ``defaults``): all four public access blocks; SSE-S3 (or SSE-KMS
    with a given key of this account and region, bucket key on); a bucket policy that denies every request
    without TLS and allows exactly ``EXPORT_WRITE_ACTIONS`` on ``<bucket>/<export_prefix>/*`` to the
    exporting principal and nothing to anyone else; object ownership ``BUCKET_OWNER_ENFORCED`` (ACLs off:
    objects the other account writes belong to this account); versioning off; a lifecycle rule that
    deletes objects ``expiration`` after they were written and incomplete multipart uploads after one day;
    ``RETAIN`` by default. No server access logs: the bucket exists for one transfer by one principal; the
    requests that start and use it (``ExportTableToPointInTime``, ``ImportTable``) are CloudTrail
    management events in both accounts. Enable S3 data events in CloudTrail if you need object-level audit.

    Reading needs no statement here: the import runs in this bucket's own account, whose IAM grants it.

    Args:
        scope: parent construct, in a stack with an explicit account and region (the replica table's).
        id: construct id.
        bucket_name: physical bucket name (deterministic, so the exporting side can address it). Required.
        exporter_account: the source table's account. Required.
        export_prefix: the only key prefix the exporter may write under. Required.
        exporter_role_arn: the exporting role in ``exporter_account``. Default: the account, which delegates
            to that account's IAM.
        encryption_key_arn: KMS key ARN in this stack's account and region. Default: SSE-S3.
        expiration: Default: 30 days.
        removal_policy: Default: ``RETAIN``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket_name: str,
        exporter_account: str,
        export_prefix: str,
        exporter_role_arn: str | None = None,
        encryption_key_arn: str | None = None,
        expiration: Duration = defaults.MIGRATION_EXPIRATION,
        removal_policy: RemovalPolicy = defaults.MIGRATION_REMOVAL_POLICY,
    ) -> None:
        super().__init__(scope, id)
        path = self.node.path
        stack = Stack.of(self)
        if Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region):
            raise ReplicationConfigError(
                path,
                f"stack {stack.stack_name} has no explicit account and region (environment-agnostic)",
                "create the stack with env=Environment(account=..., region=...) of the replica table",
            )
        self.bucket_name = require_bucket_name(path, bucket_name, "bucket_name")
        self.exporter_account = require_account(path, exporter_account, "exporter_account")
        self.export_prefix = require_export_prefix(path, export_prefix)
        self.exporter_role_arn = _require_exporter_role(path, exporter_role_arn, exporter_account)
        if encryption_key_arn is not None:
            require_kms_key_arn(path, encryption_key_arn, "encryption_key_arn", stack.region, stack.account)
        days = _whole_days(path, "expiration", expiration)
        if removal_policy not in (
            RemovalPolicy.RETAIN,
            RemovalPolicy.DESTROY,
            RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        ):
            raise ReplicationConfigError(
                path, f"removal_policy {removal_policy.name} does not apply to S3 buckets", "use RETAIN or DESTROY"
            )
        self.bucket = self._bucket(encryption_key_arn, days, removal_policy)

    def _bucket(self, encryption_key_arn: str | None, days: int, removal_policy: RemovalPolicy) -> s3.Bucket:
        """The bucket, its policy (the exporter may write under the prefix only) and its nag acknowledgement."""
        key = kms.Key.from_key_arn(self, "Key", encryption_key_arn) if encryption_key_arn else None
        bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=self.bucket_name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.KMS if key is not None else defaults.MIGRATION_ENCRYPTION,
            encryption_key=key,
            bucket_key_enabled=True if key is not None else None,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=defaults.MIGRATION_VERSIONED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireExports",
                    enabled=True,
                    expiration=Duration.days(days),
                    abort_incomplete_multipart_upload_after=defaults.MIGRATION_ABORT_INCOMPLETE_UPLOADS,
                )
            ],
            removal_policy=removal_policy,
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ExportFromSourceAccount",
                principals=[self._exporter_principal()],
                actions=list(EXPORT_WRITE_ACTIONS),
                resources=[bucket.arn_for_objects(f"{self.export_prefix}/*")],
            )
        )
        acknowledge_nag(
            bucket,
            "AwsSolutions-S1",
            "A single-purpose transfer bucket written only by one account's DynamoDB export under one prefix and "
            "emptied by its lifecycle rule; ExportTableToPointInTime and ImportTable are CloudTrail management "
            "events in both accounts. S3 data events in CloudTrail give object-level audit where needed.",
        )
        return bucket

    @property
    def bucket_arn(self) -> str:
        """The bucket's ARN (a token for the partition)."""
        return self.bucket.bucket_arn

    @property
    def export_objects_arn(self) -> str:
        """``<bucket ARN>/<export_prefix>/*``: the only objects the exporter may write."""
        return self.bucket.arn_for_objects(f"{self.export_prefix}/*")

    def import_source(
        self, export_arn: str, compression: dynamodb.InputCompressionType = defaults.IMPORT_COMPRESSION
    ) -> ExportImportSource:
        """The ``ReplicaTable`` import source for the completed export ``export_arn`` in this bucket."""
        return ExportImportSource(
            bucket_name=self.bucket_name,
            bucket_account=Stack.of(self).account,
            export_prefix=self.export_prefix,
            export_arn=export_arn,
            compression=compression,
        )

    def _exporter_principal(self) -> iam.IPrincipal:
        account = iam.AccountPrincipal(self.exporter_account)
        if self.exporter_role_arn is None:
            return account
        # A condition rather than the role ARN as principal: S3 rejects a policy naming a role that does not
        # exist (yet), and the source side may create the role later.
        return iam.PrincipalWithConditions(account, {"ArnEquals": {"aws:PrincipalArn": self.exporter_role_arn}})


def _require_exporter_role(path: str, exporter_role_arn: str | None, exporter_account: str) -> str | None:
    """``exporter_role_arn`` if it is ``None`` or a literal role ARN of ``exporter_account``, else raise."""
    if exporter_role_arn is None:
        return None
    match = _ROLE_ARN_RE.match(exporter_role_arn) if not Token.is_unresolved(exporter_role_arn) else None
    if match is None:
        raise ReplicationConfigError(
            path,
            f"exporter_role_arn {exporter_role_arn!r} is not a literal IAM role ARN",
            "pass arn:aws:iam::<source account>:role/<name>, or leave it unset to delegate to the account",
        )
    if match["account"] != exporter_account:
        raise ReplicationConfigError(
            path,
            f"exporter_role_arn {exporter_role_arn!r} is in account {match['account']}, not in the "
            f"exporting account {exporter_account}",
            "name a role of the source table's account",
        )
    return exporter_role_arn


def _whole_days(path: str, name: str, value: Duration) -> int:
    seconds = value.to_seconds()
    if Token.is_unresolved(seconds):
        raise ReplicationConfigError(path, f"{name} is a token", f"pass a literal Duration for {name}")
    days, rest = divmod(int(seconds), 86400)
    if rest or days < 1 or seconds != int(seconds):
        raise ReplicationConfigError(
            path,
            f"{name} is {value.to_human_string()}, not a whole number of days of at least one",
            f"use e.g. Duration.days({max(days, 1)}) (S3 lifecycle rules count whole days)",
        )
    return days
