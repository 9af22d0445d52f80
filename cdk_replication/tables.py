"""Table settings shared by every copy, and the construct that creates one copy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from . import defaults
from .errors import ReplicationConfigError
from .migration import ExportImportSource
from .model import KeySchema
from .props import check_arguments
from .replicator import known_copies, require_matching_key


@dataclass(frozen=True)
class TableOptions:
    """Everything about a table that is the same in every copy (schema, capacity, protection).

    Attributes:
        partition_key: partition key attribute. Required.
        sort_key: sort key attribute. Default: none.
        billing_mode: Default: ``PAY_PER_REQUEST``.
        read_capacity: read capacity units; required with ``PROVISIONED``, rejected otherwise. Default: none.
        write_capacity: write capacity units; required with ``PROVISIONED``, rejected otherwise. Default: none.
        global_secondary_indexes: GSIs created on every copy. Default: none.
        local_secondary_indexes: LSIs created on every copy (need a sort key). Default: none.
        time_to_live_attribute: TTL attribute name. Default: TTL off.
        encryption: Default: ``TableEncryption.DEFAULT`` (AWS-owned key). ``CUSTOMER_MANAGED`` uses each
            location's ``encryption_key_arn``.
        point_in_time_recovery: Default: ``True``.
        deletion_protection: Default: ``False``.
        removal_policy: what happens to the table when it leaves the stack. Default: ``RETAIN``.
    """

    partition_key: dynamodb.Attribute
    sort_key: dynamodb.Attribute | None = None
    billing_mode: dynamodb.BillingMode = defaults.BILLING_MODE
    read_capacity: int | None = None
    write_capacity: int | None = None
    global_secondary_indexes: Sequence[dynamodb.GlobalSecondaryIndexProps] = field(default_factory=tuple)
    local_secondary_indexes: Sequence[dynamodb.LocalSecondaryIndexProps] = field(default_factory=tuple)
    time_to_live_attribute: str | None = None
    encryption: dynamodb.TableEncryption = defaults.TABLE_ENCRYPTION
    point_in_time_recovery: bool = defaults.POINT_IN_TIME_RECOVERY
    deletion_protection: bool = defaults.DELETION_PROTECTION
    removal_policy: RemovalPolicy = defaults.REMOVAL_POLICY

    @property
    def key_schema(self) -> KeySchema:
        """Key attribute names, as written to ``REPLICATION_KEY``."""
        return KeySchema(
            partition_key=self.partition_key.name,
            sort_key=self.sort_key.name if self.sort_key is not None else None,
        )

    def validate(self, path: str) -> None:
        """Raise ``ReplicationConfigError`` naming ``path`` if these options cannot make a table."""
        if self.billing_mode == dynamodb.BillingMode.PROVISIONED:
            if self.read_capacity is None or self.write_capacity is None:
                raise ReplicationConfigError(
                    path,
                    f"billing_mode PROVISIONED needs read_capacity and write_capacity "
                    f"(got {self.read_capacity!r}, {self.write_capacity!r})",
                    "set both capacities, or use PAY_PER_REQUEST",
                )
            for name, value in (("read_capacity", self.read_capacity), ("write_capacity", self.write_capacity)):
                if value < 1:
                    raise ReplicationConfigError(path, f"{name} is {value}", f"set {name} to 1 or more")
        elif self.read_capacity is not None or self.write_capacity is not None:
            raise ReplicationConfigError(
                path,
                f"read_capacity/write_capacity ({self.read_capacity!r}, {self.write_capacity!r}) are set but "
                f"billing_mode is {self.billing_mode.name}",
                "drop the capacities, or set billing_mode=BillingMode.PROVISIONED",
            )
        if self.local_secondary_indexes and self.sort_key is None:
            raise ReplicationConfigError(
                path, "local_secondary_indexes need a table sort key, but sort_key is None", "add a sort_key"
            )


class ReplicaTable(Construct):
    """One copy of a replicated table, with the library's defaults applied.

    Usable on its own inside your stacks: pair it with a ``Replicator`` whose targets name it.

    Args:
        scope: parent construct (inside a stack with an explicit account and region).
        id: construct id.
        table_name: physical name. Required, because replicators in other stacks address it by name.
        options: schema and protection settings shared by every copy. Required.
        stream: stream view. Default: none (a one-way replica is written only by the replicator).
        encryption_key_arn: customer-managed key ARN, required when ``options.encryption`` is
            ``CUSTOMER_MANAGED`` unless ``create_key`` is set. Default: none.
        create_key: with ``CUSTOMER_MANAGED`` and no key ARN, create a key (rotation on) in this stack.
            Default: ``False``.
        resource_policy: table resource policy. Default: none.
        import_source: create the table from a completed DynamoDB JSON export
            (``ImportSourceSpecification``, read from ``import_source.data_prefix``). The key schema, GSIs, TTL
            and every other option still come from ``options``; local secondary indexes cannot be imported.
            CloudFormation reads it only when it creates the table; changing or removing it later means
            replacing the table, which CloudFormation refuses for a named table: keep it unchanged for the
            table's lifetime. Default: an empty table.
        kinesis_stream: a Kinesis data stream the table streams every change to (``ChangeSource.KINESIS``),
            with microsecond change times. Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table_name: str,
        options: TableOptions,
        stream: dynamodb.StreamViewType | None = None,
        encryption_key_arn: str | None = None,
        create_key: bool = False,
        resource_policy: iam.PolicyDocument | None = None,
        import_source: ExportImportSource | None = None,
        kinesis_stream: kinesis.IStream | None = None,
    ) -> None:
        super().__init__(scope, id)
        # locals() holds exactly the parameters here: nothing else has been assigned yet. The checked options
        # replace the given ones: their index sequences are read once there, and V2 GSI props converted.
        options = check_arguments(self.node.path, ReplicaTable.__init__, locals())["options"]
        options.validate(self.node.path)
        if import_source is not None:
            self._check_import_source(table_name, options, import_source)
        encryption_key = self._encryption_key(table_name, options, encryption_key_arn, create_key)
        self.encryption_key: kms.IKey | None = encryption_key
        self.table_name = table_name
        self.key_schema = options.key_schema
        stack = Stack.of(self)
        self._location = (stack.account, stack.region)
        self._require_same_key_as_replicators()
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=options.partition_key,
            sort_key=options.sort_key,
            billing_mode=options.billing_mode,
            read_capacity=options.read_capacity,
            write_capacity=options.write_capacity,
            time_to_live_attribute=options.time_to_live_attribute,
            encryption=options.encryption,
            encryption_key=encryption_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=options.point_in_time_recovery
            ),
            deletion_protection=options.deletion_protection,
            removal_policy=options.removal_policy,
            stream=stream,
            resource_policy=resource_policy,
            import_source=self._import_source(import_source),
            kinesis_stream=kinesis_stream,
            kinesis_precision_timestamp=defaults.KINESIS_TIMESTAMP_PRECISION if kinesis_stream is not None else None,
        )
        for gsi in options.global_secondary_indexes:
            self.table.add_global_secondary_index(**_struct_kwargs(gsi))
        for lsi in options.local_secondary_indexes:
            self.table.add_local_secondary_index(**_struct_kwargs(lsi))
        # Last, so that a ReplicaTable refused above (and caught by the caller) is never compared with.
        known_copies(self).add_table(table_name, *self._location, self.key_schema)

    def _check_import_source(self, table_name: str, options: TableOptions, import_source: ExportImportSource) -> None:
        """A table created from an export: no local secondary indexes, a bucket of the table's account."""
        if options.local_secondary_indexes:
            names = ", ".join(lsi.index_name for lsi in options.local_secondary_indexes)
            raise ReplicationConfigError(
                self.node.path,
                f"table {table_name!r} has local secondary indexes ({names}) and an import_source, but a "
                "table created by an import from S3 cannot have local secondary indexes",
                "drop the migration and load the table with `cdk-replication backfill` instead (or drop the "
                "local secondary indexes)",
            )
        import_source.validate(self.node.path, Stack.of(self).account)

    def _encryption_key(
        self, table_name: str, options: TableOptions, encryption_key_arn: str | None, create_key: bool
    ) -> kms.IKey | None:
        """With ``CUSTOMER_MANAGED`` encryption: the given key, or one created here (``create_key``)."""
        if options.encryption != dynamodb.TableEncryption.CUSTOMER_MANAGED:
            return None
        if encryption_key_arn is not None:
            return kms.Key.from_key_arn(self, "Key", encryption_key_arn)
        if not create_key:
            raise ReplicationConfigError(
                self.node.path,
                f"table {table_name!r} uses CUSTOMER_MANAGED encryption but no encryption_key_arn is given",
                "set encryption_key_arn on its TableLocation to a KMS key in the table's account and region",
            )
        # Rotation on: a key protecting replicated data lives as long as the data.
        key = kms.Key(self, "Key", enable_key_rotation=True, description=f"Encrypts DynamoDB table {table_name}")
        key.apply_removal_policy(RemovalPolicy.RETAIN)
        return key

    @property
    def location(self) -> tuple[str, str]:
        """(account, region) of the stack this copy is in (tokens in an environment-agnostic stack)."""
        return self._location

    def _require_same_key_as_replicators(self) -> None:
        """Compare this table's key with that of each ``Replicator`` of this app that reads or writes it (a
        ``Replicator`` created later compares itself with this table)."""
        account, region = self._location
        for replicator in known_copies(self).replicators.get((self.table_name, region, account), ()):
            require_matching_key(self.node.path, replicator, self.table_name, account, region, self.key_schema)

    def _import_source(self, source: ExportImportSource | None) -> dynamodb.ImportSourceSpecification | None:
        if source is None:
            return None
        # By name, not by reference: the bucket may leave its stack once the table exists (the import source
        # is read only at creation), and the template must not change then.
        bucket = s3.Bucket.from_bucket_name(self, "ImportBucket", source.bucket_name)
        return dynamodb.ImportSourceSpecification(
            bucket=bucket,
            bucket_owner=source.bucket_account,
            input_format=dynamodb.InputFormat.dynamo_db_json(),
            compression_type=source.compression,
            key_prefix=source.data_prefix,
        )


def _struct_kwargs(struct: object) -> dict[str, object]:
    """Keyword arguments of a jsii struct (index props), so they can be passed to ``add_*_index``.

    jsii's generated Python structs keep their set fields, by Python name, in ``_values``; the Table L1/L2
    API only accepts indexes as keyword arguments of ``add_*_index``.
    """
    values: dict[str, object] = getattr(struct, "_values")
    return dict(values)
