"""``ReplicatedTable``: one logical DynamoDB table laid out as one stack per account and region."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import App, Aws, CfnOutput, Environment, RemovalPolicy, Stack, Stage, Tags
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from . import defaults
from .alarms import ReplicationAlarms
from .change_stream import KinesisOptions, change_stream
from .dashboard import create_dashboard
from .errors import ReplicationConfigError
from .failure_destination import FailureDestination
from .migration import ExportImportSource, MigrationBucket
from .model import (
    ChangeSource,
    ConflictStrategy,
    CrossAccountAccess,
    ExistingSource,
    LocationStatus,
    MigrationOptions,
    ReplicationMode,
    ReplicationTarget,
    KeySchema,
    ResolvedTable,
    TableLocation,
)
from .naming import (
    migration_bucket_name,
    migration_export_prefix,
    partition_for_region,
    replicator_function_name,
    replicator_role_name,
    require_bucket_name,
    role_arn,
    stack_name,
    writer_role_name,
)
from .permissions import (
    acknowledge_nag,
    acknowledge_writer_role,
    only_role,
    replica_resource_policy,
    writer_role_statements,
)
from .props import check_arguments
from .published import publish_replicator, publish_status, replicator_document, status_output_id
from .replicator import Replicator, ReplicatorOptions
from .tables import ReplicaTable, TableOptions
from .topology import ReplicatedTableProps, resolve
from .transform import SECRET_LENGTH, TRANSFORM_TAG, TransformContext, check_transform, transform_secret_name


class ReplicatedTable(Construct):
    """One logical table replicated across regions and accounts, one stack per (account, region).

    ``scope`` must be an ``App`` or a ``Stage`` (not a stack): this construct creates the stacks, each with an
    explicit ``env``. Stack names are ``<prefix>-<region>``, or ``<prefix>-<account>-<region>`` for an
    account other than the source's (prefix: ``stack_name_prefix``, default the construct id, preceded by the
    stage name inside a ``Stage``). Table names are physical and deterministic, so no stack exports anything.

    One-way (default): the source location holds the source table (new, or ``existing_source``) and a
    replicator; every replica location holds a stream-less copy. The source stack depends on the replica
    stacks, so ``cdk deploy --all`` creates the targets before the replicator starts reading.

    Multi-active: every location is a writer with a ``NEW_AND_OLD_IMAGES`` stream and its own replicator
    that sends its writes to every other location (full mesh). Every copy must be in its own region. Tables
    get TTL on ``time_to_live_attribute`` or, by default, on ``<metadata prefix>expiresAt``, and the
    replicator writes its delete tombstones' expiry there (``REPLICATION_TTL_ATTRIBUTE``). There are no stack dependencies (they would
    be circular): the mappings retry until the other stacks exist, within ``max_record_age``.

    Cross-account targets (``cross_account_access``):

    * ``WRITER_ROLE`` (default): the target's stack holds a role that only the writing replicator's role may
      assume (trust: the writer's account, condition ``aws:PrincipalArn`` equal to the replicator role's
      deterministic ARN, so the trust policy is valid before that role exists) and that may only call the
      replicator's item actions on that one table (plus its customer-managed key, if any). The replicator
      may ``sts:AssumeRole`` exactly that role; ``REPLICATION_TARGETS`` carries its ``roleArn``.
    * ``RESOURCE_POLICY``: the replica table's resource policy lets only the replicator role call the
      item actions on it; no role is assumed. Not available with customer-managed keys (the key policy
      would need the other account's principal too).

    Initial load from a native export (one-way only): a replica ``TableLocation`` with
    ``migration=MigrationOptions(...)`` gets a ``MigrationBucket`` in its stack (outputs
    ``<table>MigrationBucketName`` and ``<table>MigrationExportPrefix``) that only the source account may
    write to, under that prefix only. Until ``migration.export_arn`` is set the replica table is not created
    (it is absent from ``replica_tables``); once set, it is created from the export. The source's mapping is
    created disabled while any replica has a migration, unless ``ReplicatorOptions(enabled=True)`` is given
    (refused while a replica still waits for its export). Whenever a mapping is created disabled, its stack
    outputs its UUID as ``ReplicatorEventSourceMappingUuid``, and its maximum record age is unlimited unless
    given (the changes it applies after the load are as old as the load took). See docs/cli.md,
    "Cross-account migration with a migration bucket".

    Kinesis Data Streams as the change source (``change_source=ChangeSource.KINESIS``, one-way only): the
    source stack also holds a Kinesis data stream (``kinesis=KinesisOptions(...)``: 7-day retention,
    on-demand, encrypted with ``aws/kinesis`` by default) that the source table streams its changes to with
    microsecond change times, and the replicator reads that stream instead of the table's DynamoDB stream.
    Use it when an initial load takes longer than the 24 h a DynamoDB stream keeps changes. Kinesis may
    reorder and duplicate changes, so the replicator writes each one conditionally on its change time
    (``<metadata prefix>changedAt`` on replica items) and keeps deletes as tombstones
    (``<metadata prefix>deleted``) that expire through the replicas' TTL attribute (``time_to_live_attribute``
    or ``<metadata prefix>expiresAt``) the retention plus a day later.

    Args:
        scope: an ``App`` or ``Stage``.
        id: construct id; also the default stack-name prefix and table name.
        source: the writer location (one-way) or the first location (multi-active). ``account`` and
            ``region`` are required literals, except with an ``existing_source``, whose stream ARN gives them
            (``source=TableLocation()``); ``table_name`` defaults to ``id`` (or to the name in
            ``existing_source.stream_arn``). Required.
        replicas: the other copies; at least one. A replica's ``migration`` loads it from an export. Required.
        partition_key: the table's partition key. Required, unless ``existing_source.partition_key`` gives
            it. Default: ``existing_source.partition_key``.
        sort_key: the table's sort key. Default: ``existing_source.sort_key``, else none.
        billing_mode: ``PAY_PER_REQUEST`` or ``PROVISIONED`` (then with both capacities). This and the table
            options below (``TableOptions``) apply to every table this construct creates. Default:
            ``PAY_PER_REQUEST`` (on-demand).
        read_capacity: read capacity units of every copy; required with ``PROVISIONED``, refused otherwise.
            Default: none.
        write_capacity: write capacity units of every copy; required with ``PROVISIONED``, refused
            otherwise. Default: none.
        global_secondary_indexes: ``dynamodb.GlobalSecondaryIndexProps`` of the GSIs every copy gets (a
            replica may refuse an item the source took when an index key's type differs: see Operations).
            Default: none.
        local_secondary_indexes: ``dynamodb.LocalSecondaryIndexProps`` of the LSIs every copy gets (needs a
            ``sort_key``; not with a replica ``migration``). Default: none.
        time_to_live_attribute: the TTL attribute of every copy (a number, epoch seconds). Items your TTL
            removes from the source are deleted from the replicas by replication. Default: TTL off
            (multi-active and Kinesis: ``<metadata prefix>expiresAt``, for the delete tombstones).
        encryption: ``TableEncryption.DEFAULT`` (AWS-owned key), ``AWS_MANAGED`` or ``CUSTOMER_MANAGED``
            (each location's ``encryption_key_arn``; a key is created for a new source table without one).
            Default: ``TableEncryption.DEFAULT``.
        point_in_time_recovery: point-in-time recovery on every copy created here. Default: ``True``.
        deletion_protection: DynamoDB deletion protection on every copy created here. Default: ``False``.
        removal_policy: what happens to a table when it leaves its stack. Default: ``RETAIN``.
        existing_source: import the source table instead of creating it. Default: create it.
        mode: Default: ``ONE_WAY``.
        conflict_attribute: multi-active timestamp/version attribute. Default: ``"updatedAt"``.
        conflict_strategy: multi-active. Default: ``TIMESTAMP``.
        cross_account_access: Default: ``WRITER_ROLE``.
        replicator: function and mapping tunables. Default: ``ReplicatorOptions()``.
        stack_name_prefix: Default: ``id``.
        change_source: where the replicator reads changes. Default: ``DYNAMODB_STREAMS``.
        kinesis: the data stream of ``change_source=KINESIS``. Default: ``KinesisOptions()`` then.
        failure_destination: every replicator's on-failure destination. Default: ``FailureDestination.s3()``
            (a bucket per replicator, in its stack, objects kept 30 days); ``FailureDestination.sqs()``;
            ``FailureDestination.existing_bucket(bucket)`` (one-way only).
        alarms: every replicator's alarms (``ReplicationAlarms``: actions and thresholds). Default: every alarm
            with its documented threshold, no actions.
        dashboard: create a CloudWatch dashboard in the source's stack showing every replicator. Default:
            ``True``.
        dashboard_name: Default: ``<stack name prefix>-replication`` (the ``Stage`` name in front inside a
            ``Stage``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: TableLocation,
        replicas: Sequence[TableLocation],
        partition_key: dynamodb.Attribute | None = None,
        sort_key: dynamodb.Attribute | None = None,
        billing_mode: dynamodb.BillingMode = defaults.BILLING_MODE,
        read_capacity: int | None = None,
        write_capacity: int | None = None,
        global_secondary_indexes: Sequence[dynamodb.GlobalSecondaryIndexProps] = (),
        local_secondary_indexes: Sequence[dynamodb.LocalSecondaryIndexProps] = (),
        time_to_live_attribute: str | None = None,
        encryption: dynamodb.TableEncryption = defaults.TABLE_ENCRYPTION,
        point_in_time_recovery: bool = defaults.POINT_IN_TIME_RECOVERY,
        deletion_protection: bool = defaults.DELETION_PROTECTION,
        removal_policy: RemovalPolicy = defaults.REMOVAL_POLICY,
        existing_source: ExistingSource | None = None,
        mode: ReplicationMode = ReplicationMode.ONE_WAY,
        conflict_attribute: str | None = None,
        conflict_strategy: ConflictStrategy | None = None,
        cross_account_access: CrossAccountAccess = CrossAccountAccess.WRITER_ROLE,
        replicator: ReplicatorOptions | None = None,
        stack_name_prefix: str | None = None,
        change_source: ChangeSource = ChangeSource.DYNAMODB_STREAMS,
        kinesis: KinesisOptions | None = None,
        failure_destination: FailureDestination | None = None,
        alarms: ReplicationAlarms | None = None,
        dashboard: bool = defaults.DASHBOARD,
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        path = self.node.path
        # locals() holds the parameters (and path, which has no hint). The checked values replace the given
        # ones where they differ: the sequences (a generator is read once, there) and the GSIs they hold.
        props = ReplicatedTableProps(**check_arguments(path, ReplicatedTable.__init__, locals()))
        self._refuse_stack_scope()
        #: Everything this construct builds, resolved and checked before anything is built.
        self.topology = topology = resolve(path, id, props)
        self.stacks = self._build_stacks()
        self.source_stack = self.stacks[self.source_location.env_key]
        self.transform_specs: dict[ResolvedTable, dict[str, Any]] = self._transform_specs(props)
        self._construct_tables: dict[ResolvedTable, ReplicaTable] = {}
        self.change_stream: kinesis.IStream | None = (
            change_stream(self.source_stack, "ChangeStream", topology.kinesis) if topology.kinesis is not None else None
        )
        self.source_table: dynamodb.ITable = self._source_table(topology.existing_source)
        self.replica_tables: dict[ResolvedTable, dynamodb.ITable] = {}
        self.migration_buckets: dict[ResolvedTable, MigrationBucket] = {}
        for location in self.replica_locations:
            self._build_replica(location)
        self.replicators: dict[ResolvedTable, Replicator] = {
            writer: self._replicator(writer, topology.others(writer)) for writer in topology.writers
        }
        self._output_disabled_mappings()
        self._publish()
        self._order_stacks()
        self.dashboard: cloudwatch.Dashboard | None = self._dashboard()

    # --- public surface ----------------------------------------------------------------------------------

    @property
    def mode(self) -> ReplicationMode:
        """``ONE_WAY`` or ``MULTI_ACTIVE``."""
        return self.topology.mode

    @property
    def change_source(self) -> ChangeSource:
        """Where the replicators read the changes."""
        return self.topology.change_source

    @property
    def source_location(self) -> ResolvedTable:
        """The source location, every field resolved."""
        return self.topology.source

    @property
    def replica_locations(self) -> tuple[ResolvedTable, ...]:
        """The replica locations, every field resolved, in the order given."""
        return self.topology.replicas

    @property
    def kinesis_options(self) -> KinesisOptions | None:
        """The data stream's options with ``change_source=KINESIS``, else ``None``."""
        return self.topology.kinesis

    @property
    def key(self) -> KeySchema:
        """The key attribute names of every copy."""
        return self.topology.key

    @property
    def table_options(self) -> TableOptions:
        """The settings of the tables created here."""
        return self.topology.table_options

    @property
    def migrations(self) -> Mapping[ResolvedTable, MigrationOptions]:
        """Replica location -> its initial load from an export."""
        return self.topology.migrations

    @property
    def replicator(self) -> Replicator:
        """The source location's replicator."""
        return self.replicators[self.source_location]

    @property
    def replicator_function(self) -> lambda_.IFunction:
        """The source location's replicator function."""
        return self.replicator.function

    @property
    def failure_bucket(self) -> s3.IBucket | None:
        """The source replicator's S3 failure destination (failed batches, records included); ``None`` with
        ``FailureDestination.sqs()``."""
        return self.replicator.failure_bucket

    @property
    def failure_queue(self) -> sqs.IQueue | None:
        """The source replicator's SQS failure destination (shard and sequence ranges of unapplied records);
        ``None`` with an S3 destination (the default)."""
        return self.replicator.failure_queue

    def stack_for(self, region: str, account: str | None = None) -> Stack:
        """The stack of ``region`` in ``account`` (default: the source account)."""
        key = (account or self.source_location.account, region)
        if key not in self.stacks:
            raise KeyError(f"{self.node.path} has no stack for account {key[0]} region {key[1]}")
        return self.stacks[key]

    def migration_bucket(self, region: str, account: str | None = None, table_name: str | None = None) -> MigrationBucket:
        """The migration bucket of the replica in ``region``/``account`` (default: the source account).

        ``table_name`` selects among several replicas of that location. Raises ``KeyError`` when there is no
        such bucket (no migration configured there, or ``keep_bucket=False``).
        """
        key = (account or self.source_location.account, region)
        found = [
            bucket
            for location, bucket in self.migration_buckets.items()
            if location.env_key == key and (table_name is None or location.table_name == table_name)
        ]
        if len(found) != 1:
            raise KeyError(
                f"{self.node.path} has {len(found)} migration buckets for account {key[0]} region {key[1]}"
                + (f" table {table_name}" if table_name else "")
            )
        return found[0]

    def grant_read_data(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read items of the source table (see ``ITable.grant_read_data``)."""
        return self.source_table.grant_read_data(grantee)

    # --- building ---------------------------------------------------------------------------------------

    def _refuse_stack_scope(self) -> None:
        if any(Stack.is_stack(node) for node in self.node.scopes[:-1]):
            raise ReplicationConfigError(
                self.node.path,
                "ReplicatedTable is inside a Stack, but it creates one stack per region itself",
                "create it directly under your App or a Stage; to compose pieces inside your own stacks use "
                "ReplicaTable and Replicator",
            )

    def _order_stacks(self) -> None:
        """One-way: the source stack depends on the replica stacks, so ``cdk deploy --all`` creates the targets
        before the replicator reads. Multi-active: every region's stack but the ``JOINING`` ones depends on each
        ``JOINING`` region's, so its replicator (and its published targets) starts sending to the new table only
        once that exists; the regions already deployed depend on nothing else (the other way round would be
        circular), nor do ``JOINING`` stacks on each other."""
        if self.mode != ReplicationMode.ONE_WAY:
            joining = {loc.env_key for loc in self.topology.locations
                       if self.topology.status_of(loc) == LocationStatus.JOINING}
            for key, stack in self.stacks.items():
                for new_key in () if key in joining else sorted(joining):
                    stack.add_stack_dependency(self.stacks[new_key], "the joining region's table must exist before "
                                                                     "this region's replicator sends to it")
            return
        for stack in self.stacks.values():
            if stack is not self.source_stack:
                self.source_stack.add_stack_dependency(stack, "replica tables must exist before the replicator starts reading")

    def _prefix(self) -> str:
        """The stack name prefix, the ``Stage`` name in front of it inside a ``Stage``."""
        prefix = self.topology.stack_name_prefix
        stage = Stage.of(self)
        if stage is not None and not App.is_app(stage) and stage.stage_name:
            prefix = f"{stage.stage_name}-{prefix}"
        return prefix

    def _dashboard(self) -> cloudwatch.Dashboard | None:
        """The dashboard over every replicator, in the source's stack (unless turned off)."""
        operations = self.topology.operations
        if not operations.dashboard:
            return None
        name = operations.dashboard_name or f"{self._prefix()}{defaults.DASHBOARD_SUFFIX}"
        ordered = [self.replicators[writer] for writer in self.topology.writers]
        return create_dashboard(self.source_stack, name, ordered)

    def _build_stacks(self) -> dict[tuple[str, str], Stack]:
        """One stack per (account, region), named ``<prefix>-<region>`` (``<prefix>-<account>-<region>`` in
        another account than the source's), the ``Stage`` name in front of the prefix inside a ``Stage``."""
        prefix = self._prefix()
        stacks: dict[tuple[str, str], Stack] = {}
        for location in self.topology.locations:
            if location.env_key not in stacks:
                account, region = location.env_key
                with_account = account != self.source_location.account
                # Construct id = location, so the CLI shows and selects e.g. "Employee/us-east-1".
                stacks[location.env_key] = Stack(
                    self,
                    f"{account}-{region}" if with_account else region,
                    stack_name=stack_name(prefix, region, account, with_account=with_account),
                    env=Environment(account=account, region=region),
                )
        return stacks

    def _build_replica(self, location: ResolvedTable) -> None:
        """The replica table of ``location`` (and its migration bucket); none yet while it awaits its export."""
        migration = self.migrations.get(location)
        import_source = None
        if migration is not None:
            import_source = self._migration(location, migration)
            if import_source is None:
                return  # created by the next deploy, from the export
        replica = ReplicaTable(
            self.stacks[location.env_key],
            f"Replica-{location.table_name}",
            table_name=location.table_name,
            options=self.topology.replica_table_options,
            stream=defaults.STREAM_VIEW if self.mode == ReplicationMode.MULTI_ACTIVE else None,
            encryption_key_arn=location.encryption_key_arn,
            resource_policy=self._resource_policy(location, self.topology.writers),
            import_source=import_source,
        )
        self._construct_tables[location] = replica
        self.replica_tables[location] = replica.table
        spec = self.transform_specs.get(location)
        if spec is not None:
            # What the CLI checks before it writes this table: only the published spec with this digest.
            Tags.of(replica.table).add(TRANSFORM_TAG, spec["digest"])

    def _output_disabled_mappings(self) -> None:
        """Each mapping created disabled: its UUID as a stack output, for enabling it after the load."""
        for writer, writer_replicator in self.replicators.items():
            if not writer_replicator.enabled:
                # One writer per stack (multi-active copies are in distinct regions), so the key is fixed.
                CfnOutput(
                    self.stacks[writer.env_key],
                    "ReplicatorEventSourceMappingUuid",
                    value=writer_replicator.event_source_mapping_uuid,
                    description="UUID of the replicator's event source mapping, created disabled: enable it after "
                    "the initial load (aws lambda update-event-source-mapping --uuid <this> --enabled, or "
                    "ReplicatorOptions(enabled=True))",
                )

    def _publish(self) -> None:
        """Each copy's status in its stack, and each replicator's deployed configuration in the writer's stack
        (``cdk_replication.published``), for the command line and the application to read."""
        topology = self.topology
        self._refuse_shared_copies()
        for location in topology.locations:
            copies = sum(1 for other in topology.locations if other.env_key == location.env_key)
            publish_status(self.stacks[location.env_key], location, topology.status_of(location),
                           status_output_id(location.table_name, copies))
        for writer_replicator in self.replicators.values():
            document = replicator_document(writer_replicator, topology.statuses, topology.conflict_attribute,
                                           topology.conflict_strategy)
            publish_replicator(self.node.path, writer_replicator, document)

    def _refuse_shared_copies(self) -> None:
        """Refuse a copy (account, region, table name) that another ``ReplicatedTable`` of the same ``Stage`` (or
        app) has too, e.g. two reading one ``existing_source``: the table, the replicator's function and role and
        the SSM parameters ``/cdk-replication/<table>/...`` are named after the table, unique per account (and
        region), so the second stack could not deploy. A registry per stage, not a scan of the tree (which
        would make synth quadratic in the number of tables)."""
        stage = Stage.of(self) or self.node.root
        published = _PUBLISHED_COPIES.setdefault(stage, {})
        mine = [(loc.account, loc.region, loc.table_name) for loc in self.topology.locations]
        for account, region, table in mine:
            other = published.get((account, region, table))
            if other is not None:
                raise ReplicationConfigError(
                    self.node.path,
                    f"table {table!r} in {account}/{region} is also a copy of ReplicatedTable {other}; its "
                    f"replicator function and role and its SSM parameters /cdk-replication/{table}/status and "
                    "/replicator are named after the table, so the second stack cannot deploy",
                    "declare every replica of one source in a single ReplicatedTable (for the published "
                    "configuration's 4 KB limit: shorter table names or fewer replicas), or compose ReplicaTable "
                    "and Replicator yourself",
                )
        published.update(dict.fromkeys(mine, self.node.path))

    def _transform_specs(self, props: ReplicatedTableProps) -> dict[ResolvedTable, dict[str, Any]]:
        """``transform_specs``: replica location -> the transform spec its replicator applies
        (``ReplicaTransform.to_spec``), each checked; the generated HMAC secret when a mask needs one (set as
        ``transform_secret``, else ``None``)."""
        path, topology = self.node.path, self.topology
        #: The generated HMAC key of masked replicas (in the source's stack), or ``None``.
        self.transform_secret: secretsmanager.ISecret | None = None
        self._secret_arn: str | None = None
        if props.source.transform is not None:
            raise ReplicationConfigError(
                path, "the source TableLocation has a transform, but a transform shapes what a replica receives",
                "move transform=ReplicaTransform(...) to the replica TableLocation that is to receive less")
        specs: dict[ResolvedTable, dict[str, Any]] = {}
        for location, given in zip(topology.replicas, props.replicas):
            transform = given.transform
            if transform is None:
                continue
            where = f"replica {location.table_name!r} ({location.account}/{location.region})"
            check_transform(path, where, transform, self._transform_context(props, location))
            secret_arn = transform.secret_arn
            if transform.needs_secret and secret_arn is None:
                if self.transform_secret is None:
                    self.transform_secret, self._secret_arn = hmac_secret(
                        self.source_stack, "TransformSecret", topology.source)
                secret_arn = self._secret_arn
            specs[location] = transform.to_spec([n for n in (self.key.partition_key, self.key.sort_key) if n], secret_arn)
        return specs

    def _transform_context(self, props: ReplicatedTableProps, location: ResolvedTable) -> TransformContext:
        """What ``check_transform`` needs to know of this table."""
        existing = props.existing_source
        key_attrs = [props.partition_key or (existing.partition_key if existing else None),
                     props.sort_key or (existing.sort_key if existing else None)]
        index_attrs = [a for gsi in props.global_secondary_indexes for a in (gsi.partition_key, gsi.sort_key)]
        index_attrs += [lsi.sort_key for lsi in props.local_secondary_indexes]
        short = {"STRING": "S", "NUMBER": "N", "BINARY": "B"}  # AttributeType's values, as attribute values name them
        key_types = {a.name: short[a.type.value] for a in key_attrs if a is not None}
        return TransformContext(
            one_way=self.mode == ReplicationMode.ONE_WAY,
            key_types=key_types,
            index_key_types={a.name: short[a.type.value] for a in index_attrs
                             if a is not None and a.name not in key_types},
            ttl_attribute=self.topology.replica_table_options.time_to_live_attribute,
            metadata_prefix=self.topology.replicator.metadata_prefix,
            has_migration=location in self.migrations,
        )

    def _source_table(self, existing: ExistingSource | None) -> dynamodb.ITable:
        loc = self.source_location
        stack = self.source_stack
        if existing is None:
            table = ReplicaTable(
                stack,
                "SourceTable",
                table_name=loc.table_name,
                options=self.table_options,
                stream=defaults.STREAM_VIEW,
                encryption_key_arn=loc.encryption_key_arn,
                create_key=True,
                resource_policy=(
                    self._resource_policy(loc, self.topology.writers)
                    if self.mode == ReplicationMode.MULTI_ACTIVE
                    else None
                ),
                kinesis_stream=self.change_stream,
            )
            self._construct_tables[loc] = table
            return table.table
        return dynamodb.Table.from_table_attributes(
            stack,
            "SourceTable",
            table_name=loc.table_name,
            table_stream_arn=existing.stream_arn,
            encryption_key=(
                kms.Key.from_key_arn(stack, "SourceTableKey", loc.encryption_key_arn)
                if loc.encryption_key_arn
                else None
            ),
        )

    def _migration(self, location: ResolvedTable, migration: MigrationOptions) -> ExportImportSource | None:
        """Create ``location``'s migration bucket (unless dropped); return its import source once exported."""
        stack = self.stacks[location.env_key]
        bucket_name = migration.bucket_name or migration_bucket_name(
            location.table_name, location.account, location.region
        )
        prefix = migration.export_prefix or migration_export_prefix(self.source_location.table_name, location.table_name)
        if migration.keep_bucket:
            bucket = MigrationBucket(
                stack,
                f"MigrationBucket-{location.table_name}",
                bucket_name=bucket_name,
                exporter_account=self.source_location.account,
                export_prefix=prefix,
                exporter_role_arn=migration.exporter_role_arn,
                encryption_key_arn=migration.encryption_key_arn,
                expiration=migration.expiration,
                removal_policy=migration.removal_policy,
            )
            self.migration_buckets[location] = bucket
            output_id = "".join(ch for ch in location.table_name if ch.isalnum())
            if stack.node.try_find_child(f"{output_id}MigrationBucketName") is not None:
                raise ReplicationConfigError(
                    self.node.path,
                    f"replica {location.table_name!r} and another migrated replica in {location.account}/"
                    f"{location.region} give the same output names ({output_id}MigrationBucketName)",
                    "give the replicas table names that differ in their letters or digits",
                )
            CfnOutput(
                stack,
                f"{output_id}MigrationBucketName",
                value=bucket_name,
                description=f"Bucket to export {self.source_location.table_name} into, for replica "
                f"{location.table_name} (--s3-bucket; --s3-bucket-owner {location.account})",
            )
            CfnOutput(
                stack,
                f"{output_id}MigrationExportPrefix",
                value=prefix,
                description="The only key prefix the source account may write under (--s3-prefix)",
            )
        else:
            # Still validated: the import source below names it.
            require_bucket_name(self.node.path, bucket_name, "migration bucket_name")
        if migration.export_arn is None:
            return None
        return ExportImportSource(
            bucket_name=bucket_name,
            bucket_account=location.account,
            export_prefix=prefix,
            export_arn=migration.export_arn,
            compression=migration.compression,
        )

    def _stream_of(self, location: ResolvedTable) -> tuple[str, str | None]:
        """(stream ARN, customer-managed key ARN) of a writer location's changes."""
        if self.change_stream is not None:
            assert self.kinesis_options is not None
            # A stream created here uses the AWS managed key aws/kinesis, which needs no grant.
            return self.change_stream.stream_arn, self.kinesis_options.encryption_key_arn
        if location == self.source_location:
            table = self.source_table
        else:
            table = self._construct_tables[location].table
        stream_arn = table.table_stream_arn
        assert stream_arn is not None
        return stream_arn, self._table_key_arn(location)

    def _table_key_arn(self, location: ResolvedTable) -> str | None:
        """The customer-managed key of a location's table: the one created here, or the one given."""
        built = self._construct_tables.get(location)
        if built is not None and built.encryption_key is not None:
            return built.encryption_key.key_arn
        return location.encryption_key_arn

    def _role_name(self, writer: ResolvedTable) -> str:
        return replicator_role_name(writer.table_name, writer.region)

    def _replicator_role_arn(self, writer: ResolvedTable, partition: str) -> str:
        return role_arn(partition, writer.account, self._role_name(writer))

    def _resource_policy(
        self, target: ResolvedTable, writers: Sequence[ResolvedTable]
    ) -> iam.PolicyDocument | None:
        """Resource policy letting other accounts' replicator roles write ``target`` (RESOURCE_POLICY only)."""
        if self.topology.cross_account_access != CrossAccountAccess.RESOURCE_POLICY:
            return None
        foreign = [w for w in writers if w != target and w.account != target.account]
        return replica_resource_policy(
            target,
            [(w.account, self._replicator_role_arn(w, Aws.PARTITION)) for w in foreign],
            self.mode,
            self.change_source,
        )

    def _target(self, writer: ResolvedTable, target: ResolvedTable) -> ReplicationTarget:
        spec = self.transform_specs.get(target)
        if target.account == writer.account or self.topology.cross_account_access == CrossAccountAccess.RESOURCE_POLICY:
            return ReplicationTarget(table=target, transform=spec)
        stack = self.stacks[target.env_key]
        name = writer_role_name(target.table_name, target.region, writer.account, writer.region)
        role = iam.Role(
            stack,
            f"Writer-{target.table_name}-{writer.account}-{writer.region}",
            role_name=name,
            assumed_by=only_role(writer.account, self._replicator_role_arn(writer, Aws.PARTITION)),
            description=f"Lets the replicator of {writer.table_name} ({writer.account}/{writer.region}) write "
            f"{target.table_name}",
            inline_policies={
                "WriteReplica": iam.PolicyDocument(
                    statements=writer_role_statements(target, self.mode, self.change_source)
                )
            },
        )
        acknowledge_writer_role(role, target)
        # The ARN in the environment must be a literal (the replicator and the local runtime read it).
        return ReplicationTarget(
            table=target,
            writer_role_arn=role_arn(partition_for_region(target.region), target.account, name),
            transform=spec,
        )

    def _replicator(self, writer: ResolvedTable, others: Sequence[ResolvedTable]) -> Replicator:
        stream_arn, stream_key_arn = self._stream_of(writer)
        replicator_id = "Replicator" if writer == self.source_location else f"Replicator-{writer.table_name}"
        return Replicator(
            self.stacks[writer.env_key],
            replicator_id,
            source=writer,
            stream_arn=stream_arn,
            stream_key_arn=stream_key_arn,
            source_key_arn=self._table_key_arn(writer),
            key=self.key,
            targets=[self._target(writer, other) for other in others],
            role_name=self._role_name(writer),
            # Literal, so the dashboard in the source's stack can name another region's function.
            function_name=replicator_function_name(writer.table_name, writer.region),
            mode=self.mode,
            conflict_attribute=self.topology.conflict_attribute,
            conflict_strategy=self.topology.conflict_strategy,
            ttl_attribute=self.topology.tombstone_ttl_attribute,
            options=self.topology.replicator,
            change_source=self.change_source,
            change_retention=self.kinesis_options.retention if self.kinesis_options is not None else None,
            failure_destination=self.topology.operations.failure_destination,
            alarms=self.topology.operations.alarms,
        )


#: Per ``Stage`` (or app): (account, region, table name) -> the path of the ``ReplicatedTable`` that publishes
#: that copy. Weak, so that a discarded app takes its entry with it.
_PUBLISHED_COPIES: "weakref.WeakKeyDictionary[IConstruct, dict[tuple[str, str, str], str]]" = \
    weakref.WeakKeyDictionary()


def hmac_secret(scope: Construct, id: str, location: ResolvedTable) -> tuple[secretsmanager.Secret, str]:
    """The generated HMAC key of a ``ReplicatedTable``'s masked replicas in the source's stack, and the literal
    (partial) ARN the replicator reads it by.

    The secret is named ``cdk-replication/<source table>/hmac-key`` (unique per account and region, as the
    table name is), holds 64 letters and digits, and is retained when removed (replicas hashed with it would
    otherwise lose their key). Its full ARN ends in a random suffix known only after deployment, so the
    replicator's environment names it by the ARN without the suffix, which ``GetSecretValue`` accepts; the
    role's policy names ``<that ARN>-??????`` (``permissions._secret_statements``).
    """
    name = transform_secret_name(location.table_name)
    secret = secretsmanager.Secret(
        scope,
        id,
        secret_name=name,
        description=f"HMAC key of the masked replicas of {location.table_name} (cdk-replication); rotating it "
        "re-keys every hashed value: rebuild the replicas after a rotation (docs/architecture.md)",
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=SECRET_LENGTH, exclude_punctuation=True, include_space=False
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge_nag(
        secret,
        "AwsSolutions-SMG4",
        "The HMAC key of masked replicas is not rotated automatically: a rotation changes every hashed value, "
        "so it is an operator's step followed by a rebuild of the replicas (docs/architecture.md, key rotation)",
    )
    partition = partition_for_region(location.region)
    return secret, f"arn:{partition}:secretsmanager:{location.region}:{location.account}:secret:{name}"
