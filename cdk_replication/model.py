"""Plain value types that describe a replication topology (no constructs here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from enum import Enum

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb

from . import defaults
from .transform import ReplicaTransform


class ReplicationMode(str, Enum):
    """How copies relate. The value is written verbatim to ``REPLICATION_MODE``."""

    #: One source table with a stream; replicas that only the replicator writes.
    ONE_WAY = "ONE_WAY"
    #: Every location is a writer; each location's replicator sends its local writes to all the others.
    MULTI_ACTIVE = "MULTI_ACTIVE"


class ChangeSource(str, Enum):
    """Where a replicator reads the source table's changes; written verbatim to ``REPLICATION_CHANGE_SOURCE``."""

    #: The table's DynamoDB stream: one item's changes in write order, kept 24 hours.
    DYNAMODB_STREAMS = "DYNAMODB_STREAMS"
    #: A Kinesis data stream the table streams its changes to: kept up to a year (default 7 days), for
    #: initial loads longer than a day. Changes may arrive out of order and twice, so the replicator orders
    #: them by their creation time and writes conditionally; a delete leaves a tombstone in the replica.
    #: ONE_WAY only.
    KINESIS = "KINESIS"


class ConflictStrategy(str, Enum):
    """Multi-active conflict resolution; written verbatim to ``REPLICATION_CONFLICT_STRATEGY``."""

    #: Last writer wins on an application-supplied timestamp attribute.
    TIMESTAMP = "TIMESTAMP"
    #: Highest version attribute wins.
    VERSION = "VERSION"


class LocationStatus(str, Enum):
    """Where one copy stands in a topology that grows or shrinks; published verbatim in the SSM parameter
    ``/cdk-replication/<table>/status`` of the copy's stack (and its ``ReplicationStatus`` output), so that an
    application can refuse to write to a copy that is not ``ACTIVE``."""

    #: A full member: replicated to (and, multi-active, written by the application and replicated from).
    ACTIVE = "ACTIVE"
    #: Being added: its table and replication are deployed, its existing data is being copied
    #: (``cdk-replication join``). The application must not use it (multi-active: must not write there) yet.
    JOINING = "JOINING"
    #: Multi-active only: being removed. The application stops writing there while replication still runs in
    #: both directions, until ``cdk-replication leave`` finds it drained; then the location is removed.
    LEAVING = "LEAVING"


class CrossAccountAccess(str, Enum):
    """How a replicator in one account is allowed to write a replica table in another account."""

    #: A role in the target account that trusts only the source replicator's role and may only write the
    #: replica table; the replicator assumes it (``roleArn`` in ``REPLICATION_TARGETS``). Works with every
    #: DynamoDB API and keeps the target account's audit trail on its own principal.
    WRITER_ROLE = "WRITER_ROLE"
    #: A resource policy on the replica table naming only the source replicator's role; no role to assume.
    RESOURCE_POLICY = "RESOURCE_POLICY"


@dataclass(frozen=True)
class MigrationOptions:
    """An initial load of one replica from a native export of the source (``TableLocation.migration``).

    The steps (docs/cli.md, "Cross-account migration with a migration bucket"): deploy without
    ``export_arn`` (the replica's stack holds only the bucket; the replicator's mapping is created
    disabled); export the source into the bucket under ``export_prefix``; set ``export_arn`` and deploy
    (CloudFormation creates the replica table from the export); set ``ReplicatorOptions(enabled=True)`` and
    deploy, keeping both settings from then on; optionally set ``keep_bucket=False`` and deploy.

    The export reads the source's point-in-time recovery data. A source table this library creates has PITR
    on by default (``point_in_time_recovery=False`` is refused with a migration); an existing source's
    settings cannot be changed from here: turn PITR on with ``aws dynamodb update-continuous-backups`` or
    ``cdk-replication migrate`` (which turns on the stream and PITR before exporting).

    Attributes:
        export_arn: the ``ExportArn`` of a COMPLETED export of the source table into this bucket and prefix.
            Unset: the replica table is not created yet. Set: the replica table is created from the export's
            data (``<export_prefix>/AWSDynamoDB/<export id>/data/``), with the construct's key schema, GSIs,
            TTL and every other table option. CloudFormation uses the import source only when it creates the
            table and cannot change it later: keep this value in your app for the table's lifetime (changing
            or removing it asks CloudFormation to replace the table, which it refuses for a named table).
            Default: none.
        export_prefix: the one key prefix the exporter may write under. Default:
            ``cdk-replication/<source table>/<replica table>``, the default of
            ``cdk-replication migrate --s3-prefix``.
        exporter_role_arn: the role in the source account that runs the export; only that role may then write.
            Default: any principal of the source account whose own IAM policies allow the writes (the
            account is the principal, so the source account's administrators decide who exports).
        bucket_name: Default: ``<replica table>-migration-<account>-<region>`` (lower-cased, at most 63
            characters), see ``naming.migration_bucket_name``.
        encryption_key_arn: a KMS key of the replica's account and region for SSE-KMS; its key policy must
            let the exporting principal use ``kms:GenerateDataKey`` and ``kms:Decrypt`` (this library does
            not edit existing keys). Default: SSE-S3.
        expiration: export objects are deleted this long after they were written (whole days). Default: 30 days.
        removal_policy: ``RETAIN`` or ``DESTROY``. Default: ``RETAIN``. A retained bucket keeps its lifecycle rule and so
            empties itself; ``DESTROY`` deletes only an empty bucket (CloudFormation cannot delete objects).
        compression: compression of the export's files. Default: ``GZIP`` (what exports write).
        keep_bucket: ``False`` takes the bucket (and the source account's write access) out of the stack once
            the replica is loaded; needs ``export_arn``. Default: ``True``.
    """

    export_arn: str | None = None
    export_prefix: str | None = None
    exporter_role_arn: str | None = None
    bucket_name: str | None = None
    encryption_key_arn: str | None = None
    expiration: Duration = defaults.MIGRATION_EXPIRATION
    removal_policy: RemovalPolicy = defaults.MIGRATION_REMOVAL_POLICY
    compression: dynamodb.InputCompressionType = defaults.IMPORT_COMPRESSION
    keep_bucket: bool = True


@dataclass(frozen=True)
class TableLocation:
    """Where one copy of a table lives.

    Attributes:
        region: AWS region, e.g. ``"us-east-1"``. Must be a literal string (no tokens). Required, except for the
            source of a ``ReplicatedTable`` with an ``existing_source``. Default: none; for that source, the
            region in ``existing_source.stream_arn``.
        account: 12-digit AWS account id. Default: the source location's account; for the source itself
            (where it is required), the account in ``existing_source.stream_arn`` when there is one.
        table_name: physical table name. Default: the source table's name (allowed only in a different
            region or account than the source, since names are unique per account and region).
        encryption_key_arn: ARN of the customer-managed KMS key of this copy, when the table uses
            ``TableEncryption.CUSTOMER_MANAGED`` (required then for replicas; for a new source table a key
            is created in its stack when omitted). Default: none.
        migration: load this replica from a native export of the source before replicating (one-way
            replicas only): a migration bucket in this location's stack, the replica table created from the
            export once ``migration.export_arn`` is set, and the replicator's mapping created disabled until
            ``ReplicatorOptions(enabled=True)``. A ``JOINING`` replica of a topology with other ``ACTIVE``
            replicas is instead left out of the replicator's targets until ``export_arn`` is set, and the
            mapping keeps running for the others. Default: none (an empty replica, replicated at once).
        status: where this copy stands while the topology grows or shrinks (``LocationStatus``), published in
            the SSM parameter ``/cdk-replication/<table name>/status`` of its stack. ``JOINING``: a new copy
            whose data ``cdk-replication join`` copies; ``LEAVING`` (multi-active only): a region being
            drained before its removal (a one-way replica is simply removed). The one-way source is always
            ``ACTIVE``; the multi-active ``source=`` is never ``JOINING`` or ``LEAVING`` (a new region joins as
            a replica). Default: ``ACTIVE``.
        transform: what this one-way replica receives (``ReplicaTransform``: filter, keep/drop, masks; the
            replica table is tagged ``cdk-replication:transform`` = ``published``, a marker that says nothing
            about the spec; the spec is in the source's published ``replicator`` parameter). Refused on the
            source, in multi-active mode and with ``migration``. Default: none (every item, whole).
    """

    region: str | None = None
    account: str | None = None
    table_name: str | None = None
    encryption_key_arn: str | None = None
    migration: MigrationOptions | None = None
    status: LocationStatus = LocationStatus.ACTIVE
    transform: ReplicaTransform | None = None


@dataclass(frozen=True)
class ExistingSource:
    """A source table created outside this CDK app (most users start here).

    We cannot read the table at synth time, so its stream is declared here. The ``ReplicatedTable``'s
    ``source`` may then leave ``region``, ``account`` and ``table_name`` unset: they are read from
    ``stream_arn`` (a value given there must agree with the ARN).

    Attributes:
        stream_arn: the table's latest stream ARN
            (``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>``), as a literal string. Required.
        stream_view_type: the stream's view; must be ``NEW_AND_OLD_IMAGES``. Default: ``None`` (no stream),
            which is rejected with the fix.
        partition_key: the existing table's partition key, if not given to the construct itself. Default:
            none (then the construct's ``partition_key`` is required).
        sort_key: the existing table's sort key, if any. Must agree with the construct's ``sort_key``
            when both are given. Default: none (the construct's ``sort_key``, if any).

    The key (here or on the construct) must be the table's exact key, sort key included: it cannot be read
    at synth time, the replicas are created with it, and the replicator keys items by it. A record whose key
    attributes differ is never written (distinct items would merge); it is reported as failed with
    ``ErrorCode`` ``KeySchemaMismatch``, logged with both key sets, and its batch ends in the failure
    destination; replaying it cannot help, since the key is wrong, not the record. To recover: declare the exact key, replace the replica tables created with the wrong key (a table's
    key cannot change), then copy the source into them with ``cdk-replication backfill``.
    """

    stream_arn: str
    stream_view_type: dynamodb.StreamViewType | None = None
    partition_key: dynamodb.Attribute | None = None
    sort_key: dynamodb.Attribute | None = None


@dataclass(frozen=True)
class KeySchema:
    """Attribute names of a table's primary key, as the replicator needs them (``REPLICATION_KEY``).

    Attributes:
        partition_key: the partition key attribute's name. Required.
        sort_key: the sort key attribute's name. Default: ``None`` (the table has no sort key).
    """

    partition_key: str
    sort_key: str | None = None

    def to_env(self) -> dict[str, str | None]:
        """The JSON object written to ``REPLICATION_KEY``."""
        return {"partitionKey": self.partition_key, "sortKey": self.sort_key}


@dataclass(frozen=True)
class ResolvedTable:
    """A table copy with every location field filled in (what the replicator's environment names).

    Attributes:
        table_name: physical table name. Required.
        region: AWS region. Required.
        account: 12-digit account id. Required.
        encryption_key_arn: customer-managed key ARN, when known as a literal. Default: ``None``.
    """

    table_name: str
    region: str
    account: str
    encryption_key_arn: str | None = None

    @property
    def env_key(self) -> tuple[str, str]:
        """The (account, region) pair that selects the stack this copy lives in."""
        return (self.account, self.region)

    def to_env(self) -> dict[str, str]:
        """The JSON object written to ``REPLICATION_SOURCE`` / an element of ``REPLICATION_TARGETS``."""
        return {"tableName": self.table_name, "region": self.region, "account": self.account}


@dataclass(frozen=True)
class ReplicationTarget:
    """One table a replicator writes to.

    Attributes:
        table: where the target lives. Required.
        writer_role_arn: role in the target account that the replicator assumes for this target (written
            to ``REPLICATION_TARGETS`` as ``roleArn``); ``None`` writes with the replicator's own role.
            Default: ``None``.
        transform: the transform spec applied on the way (``ReplicaTransform.to_spec``; written to
            ``REPLICATION_TARGETS`` as ``transform``). Default: ``None`` (an exact copy).
    """

    table: ResolvedTable
    writer_role_arn: str | None = None
    transform: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_env(self) -> dict[str, Any]:
        """One element of ``REPLICATION_TARGETS``."""
        entry: dict[str, Any] = dict(self.table.to_env())
        if self.writer_role_arn is not None:
            entry["roleArn"] = self.writer_role_arn
        if self.transform is not None:
            entry["transform"] = dict(self.transform)
        return entry
