"""Plain value types that describe a replication topology (no constructs here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from aws_cdk import aws_dynamodb as dynamodb

if TYPE_CHECKING:
    from .migration import MigrationOptions


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


class CrossAccountAccess(str, Enum):
    """How a replicator in one account is allowed to write a replica table in another account."""

    #: A role in the target account that trusts only the source replicator's role and may only write the
    #: replica table; the replicator assumes it (``roleArn`` in ``REPLICATION_TARGETS``). Works with every
    #: DynamoDB API and keeps the target account's audit trail on its own principal.
    WRITER_ROLE = "WRITER_ROLE"
    #: A resource policy on the replica table naming only the source replicator's role; no role to assume.
    RESOURCE_POLICY = "RESOURCE_POLICY"


@dataclass(frozen=True)
class TableLocation:
    """Where one copy of a table lives.

    Attributes:
        region: AWS region, e.g. ``"us-east-1"``. Must be a literal string (no tokens).
        account: 12-digit AWS account id. Default: the source location's account.
        table_name: physical table name. Default: the source table's name (allowed only in a different
            region or account than the source, since names are unique per account and region).
        encryption_key_arn: ARN of the customer-managed KMS key of this copy, when the table uses
            ``TableEncryption.CUSTOMER_MANAGED`` (required then for replicas; for a new source table a key
            is created in its stack when omitted). Default: none.
        migration: load this replica from a native export of the source before replicating (one-way
            replicas only): a migration bucket in this location's stack, the replica table created from the
            export once ``migration.export_arn`` is set, and the replicator's mapping created disabled until
            ``ReplicatorOptions(enabled=True)``. Default: none (an empty replica, replicated at once).
    """

    region: str
    account: str | None = None
    table_name: str | None = None
    encryption_key_arn: str | None = None
    migration: MigrationOptions | None = None


@dataclass(frozen=True)
class ExistingSource:
    """A source table created outside this CDK app (most users start here).

    We cannot read the table at synth time, so its stream is declared here.

    Attributes:
        stream_arn: the table's latest stream ARN
            (``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>``).
        stream_view_type: the stream's view; must be ``NEW_AND_OLD_IMAGES``. Default: ``None`` (no stream),
            which is rejected with the fix.
        partition_key: the existing table's partition key, if not given to the construct itself.
        sort_key: the existing table's sort key, if any. Must agree with the construct's ``sort_key``
            when both are given.

    The key (here or on the construct) must be the table's exact key, sort key included: it cannot be read
    at synth time, the replicas are created with it, and the replicator keys items by it. A record whose key
    attributes differ is never written (distinct items would merge); it is reported as failed with
    ``ErrorCode`` ``KeySchemaMismatch``, logged with both key sets, and its shard and sequence range end in
    the failure queue, which does not hold the record (the stream forgets it after 24 h; nothing redrives
    it). To recover: declare the exact key, replace the replica tables created with the wrong key (a table's
    key cannot change), then copy the source into them with ``cdk-replication backfill``.
    """

    stream_arn: str
    stream_view_type: dynamodb.StreamViewType | None = None
    partition_key: dynamodb.Attribute | None = None
    sort_key: dynamodb.Attribute | None = None


@dataclass(frozen=True)
class KeySchema:
    """Attribute names of a table's primary key, as the replicator needs them (``REPLICATION_KEY``)."""

    partition_key: str
    sort_key: str | None = None

    def to_env(self) -> dict[str, str | None]:
        """The JSON object written to ``REPLICATION_KEY``."""
        return {"partitionKey": self.partition_key, "sortKey": self.sort_key}


@dataclass(frozen=True)
class ResolvedTable:
    """A table copy with every location field filled in (what the replicator's environment names).

    Attributes:
        table_name: physical table name.
        region: AWS region.
        account: 12-digit account id.
        encryption_key_arn: customer-managed key ARN, when known as a literal.
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
