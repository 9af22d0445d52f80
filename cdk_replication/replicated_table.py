"""``ReplicatedTable``: one logical DynamoDB table laid out as one stack per account and region."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aws_cdk import App, Aws, CfnOutput, Environment, RemovalPolicy, Stack, Stage
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import defaults
from .change_stream import KinesisOptions, change_stream
from .errors import ReplicationConfigError
from .migration import ExportImportSource, MigrationBucket, parse_export_arn, require_export_prefix
from .model import (
    ChangeSource,
    ConflictStrategy,
    CrossAccountAccess,
    ExistingSource,
    KeySchema,
    MigrationOptions,
    ReplicationMode,
    ReplicationTarget,
    ResolvedTable,
    TableLocation,
)
from .naming import (
    migration_bucket_name,
    migration_export_prefix,
    parse_stream_arn,
    partition_for_region,
    replicator_role_name,
    require_account,
    require_bucket_name,
    require_kms_key_arn,
    require_region,
    require_table_name,
    role_arn,
    stack_name,
    table_arn,
    writer_role_name,
)
from .props import check_arguments
from .permissions import acknowledge_writer_role, only_role, replica_resource_policy, writer_role_statements
from .replicator import Replicator, ReplicatorOptions, require_supported_change_source
from .tables import ReplicaTable, TableOptions


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
            ``region`` are required literals; ``table_name`` defaults to ``id`` (or to the name in
            ``existing_source.stream_arn``).
        replicas: the other copies; at least one. A replica's ``migration`` loads it from an export.
        partition_key / sort_key: the table key (also taken from ``existing_source`` when given there).
        billing_mode, read_capacity, write_capacity, global_secondary_indexes, local_secondary_indexes,
            time_to_live_attribute, encryption, point_in_time_recovery, deletion_protection,
            removal_policy: see ``TableOptions``; applied to every table this construct creates.
        existing_source: import the source table instead of creating it. Default: create it.
        mode: Default: ``ONE_WAY``.
        conflict_attribute: multi-active timestamp/version attribute. Default: ``"updatedAt"``.
        conflict_strategy: multi-active. Default: ``TIMESTAMP``.
        cross_account_access: Default: ``WRITER_ROLE``.
        replicator: function and mapping tunables. Default: ``ReplicatorOptions()``.
        stack_name_prefix: Default: ``id``.
        change_source: where the replicator reads changes. Default: ``DYNAMODB_STREAMS``.
        kinesis: the data stream of ``change_source=KINESIS``. Default: ``KinesisOptions()`` then.
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
    ) -> None:
        super().__init__(scope, id)
        path = self.node.path
        # locals() holds the parameters (and path, which has no hint). The checked values replace the given
        # ones where they differ: the sequences (a generator is read once, there) and the GSIs they hold.
        checked = check_arguments(path, ReplicatedTable.__init__, locals())
        replicas = checked["replicas"]
        global_secondary_indexes = checked["global_secondary_indexes"]
        local_secondary_indexes = checked["local_secondary_indexes"]
        if any(Stack.is_stack(node) for node in self.node.scopes[:-1]):
            raise ReplicationConfigError(
                path,
                "ReplicatedTable is inside a Stack, but it creates one stack per region itself",
                "create it directly under your App or a Stage; to compose pieces inside your own stacks use "
                "ReplicaTable and Replicator",
            )
        self.mode = mode
        self._cross_account_access = cross_account_access
        self._replicator_options = replicator or ReplicatorOptions()
        self._replicator_options.validate(path)
        if mode == ReplicationMode.ONE_WAY and (conflict_attribute is not None or conflict_strategy is not None):
            raise ReplicationConfigError(
                path,
                f"conflict_attribute={conflict_attribute!r} / conflict_strategy={conflict_strategy!r} are set in "
                "ONE_WAY mode, where there are no conflicts to resolve",
                "drop them, or use mode=ReplicationMode.MULTI_ACTIVE",
            )
        if mode == ReplicationMode.MULTI_ACTIVE and existing_source is not None:
            raise ReplicationConfigError(
                path,
                "existing_source is not supported in MULTI_ACTIVE mode (every location's table is created here)",
                "create the tables with this construct, or use ONE_WAY",
            )
        self._conflict_attribute = conflict_attribute
        self._conflict_strategy = conflict_strategy
        self.change_source = change_source

        # --- locations --------------------------------------------------------------------------------
        self.source_location = self._resolve_source(source, existing_source, id)
        self.replica_locations = self._resolve_replicas(replicas)
        self.kinesis_options = self._resolve_change_source(change_source, kinesis, mode, existing_source)
        self.key = self._resolve_key(partition_key, sort_key, existing_source)
        pk = partition_key or (existing_source.partition_key if existing_source else None)
        sk = sort_key or (existing_source.sort_key if existing_source else None)
        assert pk is not None
        self.table_options = TableOptions(
            partition_key=pk,
            sort_key=sk,
            billing_mode=billing_mode,
            read_capacity=read_capacity,
            write_capacity=write_capacity,
            global_secondary_indexes=tuple(global_secondary_indexes),
            local_secondary_indexes=tuple(local_secondary_indexes),
            time_to_live_attribute=self._ttl_attribute(mode, time_to_live_attribute),
            encryption=encryption,
            point_in_time_recovery=point_in_time_recovery,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )
        self.table_options.validate(path)
        if existing_source is not None:
            self._check_existing_source(existing_source)
        self._check_encryption(encryption, cross_account_access, imported_source=existing_source is not None)
        self.migrations: dict[ResolvedTable, MigrationOptions] = self._resolve_migrations(
            source, replicas, imported_source=existing_source is not None
        )
        if self.migrations and self._replicator_options.enabled is None:
            # The safe order: load the copy first, then apply the stream from TRIM_HORIZON.
            self._replicator_options = dataclasses.replace(self._replicator_options, enabled=False)
        if self.migrations:
            # Enabled after the load, the mapping starts with changes as old as the load took: a 1-hour limit
            # would send all but the last hour of them to the failure queue.
            self._replicator_options = self._replicator_options.with_backlog(path, backlog=True)

        # --- stacks -------------------------------------------------------------------------------------
        prefix = stack_name_prefix or id
        stage = Stage.of(self)
        if stage is not None and not App.is_app(stage) and stage.stage_name:
            prefix = f"{stage.stage_name}-{prefix}"
        self.stacks: dict[tuple[str, str], Stack] = {}
        for location in (self.source_location, *self.replica_locations):
            if location.env_key not in self.stacks:
                account, region = location.env_key
                with_account = account != self.source_location.account
                name = stack_name(prefix, region, account, with_account=with_account)
                # Construct id = location, so the CLI shows and selects e.g. "Employee/us-east-1".
                self.stacks[location.env_key] = Stack(
                    self,
                    f"{account}-{region}" if with_account else region,
                    stack_name=name,
                    env=Environment(account=account, region=region),
                )
        self.source_stack = self.stacks[self.source_location.env_key]

        # --- tables -------------------------------------------------------------------------------------
        writers = (
            [self.source_location]
            if mode == ReplicationMode.ONE_WAY
            else [self.source_location, *self.replica_locations]
        )
        self._construct_tables: dict[ResolvedTable, ReplicaTable] = {}
        self.change_stream: kinesis.IStream | None = (
            change_stream(self.source_stack, "ChangeStream", self.kinesis_options)
            if self.kinesis_options is not None
            else None
        )
        self.source_table: dynamodb.ITable = self._source_table(existing_source)
        self.replica_tables: dict[ResolvedTable, dynamodb.ITable] = {}
        self.migration_buckets: dict[ResolvedTable, MigrationBucket] = {}
        for location in self.replica_locations:
            migration = self.migrations.get(location)
            import_source = None
            if migration is not None:
                import_source = self._migration(location, migration)
                if import_source is None:
                    continue  # created by the next deploy, from the export
            replica = ReplicaTable(
                self.stacks[location.env_key],
                f"Replica-{location.table_name}",
                table_name=location.table_name,
                options=self._replica_options(),
                stream=defaults.STREAM_VIEW if mode == ReplicationMode.MULTI_ACTIVE else None,
                encryption_key_arn=location.encryption_key_arn,
                resource_policy=self._resource_policy(location, writers),
                import_source=import_source,
            )
            self._construct_tables[location] = replica
            self.replica_tables[location] = replica.table

        # --- replicators --------------------------------------------------------------------------------
        self.replicators: dict[ResolvedTable, Replicator] = {}
        for writer in writers:
            others = [loc for loc in (self.source_location, *self.replica_locations) if loc != writer]
            self.replicators[writer] = self._replicator(writer, others)
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
        if mode == ReplicationMode.ONE_WAY:
            for stack in self.stacks.values():
                if stack is not self.source_stack:
                    self.source_stack.add_stack_dependency(
                        stack, "replica tables must exist before the replicator starts reading"
                    )

    # --- public surface ----------------------------------------------------------------------------------

    @property
    def replicator(self) -> Replicator:
        """The source location's replicator."""
        return self.replicators[self.source_location]

    @property
    def replicator_function(self) -> lambda_.IFunction:
        """The source location's replicator function."""
        return self.replicator.function

    @property
    def failure_queue(self) -> sqs.IQueue:
        """The source replicator's on-failure queue (shard and sequence ranges of unapplied records)."""
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

    # --- resolution and validation -------------------------------------------------------------------

    def _resolve_source(
        self, source: TableLocation, existing: ExistingSource | None, default_name: str
    ) -> ResolvedTable:
        path = self.node.path
        region = require_region(path, source.region, "source region")
        account = require_account(path, source.account, "source account")
        name = source.table_name
        if existing is not None:
            arn = parse_stream_arn(path, existing.stream_arn)
            if name is not None and name != arn["table"]:
                raise ReplicationConfigError(
                    path,
                    f"source table_name {name!r} differs from the table in existing_source.stream_arn "
                    f"({arn['table']!r})",
                    "use the stream ARN of that table, or leave table_name unset",
                )
            name = arn["table"]
        table_name = require_table_name(path, name if name is not None else default_name, "source table_name")
        key_arn = source.encryption_key_arn
        if key_arn is not None:
            require_kms_key_arn(path, key_arn, "source encryption_key_arn", region, account)
        return ResolvedTable(table_name=table_name, region=region, account=account, encryption_key_arn=key_arn)

    def _resolve_replicas(self, replicas: Sequence[TableLocation]) -> tuple[ResolvedTable, ...]:
        path = self.node.path
        if not replicas:
            raise ReplicationConfigError(path, "replicas is empty", "give at least one TableLocation to copy to")
        src = self.source_location
        seen: dict[tuple[str, str, str], int] = {(src.account, src.region, src.table_name): -1}
        resolved = []
        for index, replica in enumerate(replicas):
            what = f"replicas[{index}]"
            region = require_region(path, replica.region, f"{what} region")
            account = require_account(
                path, replica.account if replica.account is not None else src.account, f"{what} account"
            )
            table_name = require_table_name(
                path, replica.table_name if replica.table_name is not None else src.table_name, f"{what} table_name"
            )
            key = (account, region, table_name)
            if key in seen:
                if seen[key] == -1:
                    raise ReplicationConfigError(
                        path,
                        f"{what} is in the source's account {account} and region {region} with the same table "
                        f"name {table_name!r}",
                        "give a same-region copy a distinct table_name (e.g. an audit/history name)",
                    )
                raise ReplicationConfigError(
                    path,
                    f"{what} duplicates replicas[{seen[key]}] (account {account}, region {region}, "
                    f"table {table_name!r})",
                    "list each replica location once",
                )
            seen[key] = index
            key_arn = replica.encryption_key_arn
            if key_arn is not None:
                require_kms_key_arn(path, key_arn, f"{what} encryption_key_arn", region, account)
            resolved.append(ResolvedTable(table_name, region, account, key_arn))
        return tuple(resolved)

    def _resolve_key(
        self,
        partition_key: dynamodb.Attribute | None,
        sort_key: dynamodb.Attribute | None,
        existing: ExistingSource | None,
    ) -> KeySchema:
        path = self.node.path
        if existing is not None and existing.partition_key is not None and partition_key is not None:
            if _attr(existing.partition_key) != _attr(partition_key):
                raise ReplicationConfigError(
                    path,
                    f"partition_key {_attr(partition_key)} differs from existing_source.partition_key "
                    f"{_attr(existing.partition_key)}",
                    "declare the existing table's key once, or make both identical",
                )
            if (sort_key is None) != (existing.sort_key is None) or (
                sort_key is not None and existing.sort_key is not None and _attr(sort_key) != _attr(existing.sort_key)
            ):
                raise ReplicationConfigError(
                    path,
                    f"sort_key {_attr(sort_key)} and existing_source.sort_key {_attr(existing.sort_key)} disagree "
                    "(a sort key on only one side, or different sort keys)",
                    "declare the existing table's exact key; every copy must have the same key schema",
                )
        pk = partition_key or (existing.partition_key if existing else None)
        sk = sort_key or (existing.sort_key if existing else None)
        if pk is None:
            raise ReplicationConfigError(
                path,
                "no partition_key is given",
                "pass partition_key=dynamodb.Attribute(name=..., type=...) (for an existing source: its key)",
            )
        return KeySchema(partition_key=pk.name, sort_key=sk.name if sk is not None else None)

    def _check_existing_source(self, existing: ExistingSource) -> None:
        path = self.node.path
        view = existing.stream_view_type
        if view != dynamodb.StreamViewType.NEW_AND_OLD_IMAGES:
            shown = view.name if view is not None else "no stream"
            raise ReplicationConfigError(
                path,
                f"existing source table {self.source_location.table_name!r} has stream view {shown}; the "
                "replicator needs both images to apply deletes and to recognise its own writes",
                "enable the stream with NEW_AND_OLD_IMAGES (aws dynamodb update-table --stream-specification "
                "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES) and declare stream_view_type="
                "StreamViewType.NEW_AND_OLD_IMAGES with the new stream ARN",
            )
        arn = parse_stream_arn(path, existing.stream_arn)
        if (arn["account"], arn["region"]) != (self.source_location.account, self.source_location.region):
            raise ReplicationConfigError(
                path,
                f"existing_source.stream_arn is in {arn['account']}/{arn['region']} but source is "
                f"{self.source_location.account}/{self.source_location.region}",
                "set source region and account to the stream's",
            )
        if arn["partition"] != partition_for_region(self.source_location.region):
            raise ReplicationConfigError(
                path,
                f"existing_source.stream_arn partition {arn['partition']!r} does not match region "
                f"{self.source_location.region}",
                "use the ARN exactly as describe-table returns it",
            )

    def _check_encryption(
        self, encryption: dynamodb.TableEncryption, access: CrossAccountAccess, *, imported_source: bool
    ) -> None:
        """``encryption`` applies to the tables this construct creates. An imported source keeps its own
        encryption; its key ARN (if any) is only needed to decrypt its stream."""
        path = self.node.path
        created = [*([] if imported_source else [self.source_location]), *self.replica_locations]
        if encryption != dynamodb.TableEncryption.CUSTOMER_MANAGED:
            keyed = [loc for loc in created if loc.encryption_key_arn]
            if keyed:
                raise ReplicationConfigError(
                    path,
                    f"encryption_key_arn is set for table {keyed[0].table_name!r} in {keyed[0].region} but "
                    f"encryption is {encryption.name}",
                    "set encryption=TableEncryption.CUSTOMER_MANAGED, or drop the key ARN",
                )
            return
        for index, loc in enumerate(self.replica_locations):
            if loc.encryption_key_arn is None:
                raise ReplicationConfigError(
                    path,
                    f"replicas[{index}] ({loc.table_name!r} in {loc.region}) has no encryption_key_arn but "
                    "encryption is CUSTOMER_MANAGED",
                    "set encryption_key_arn on that TableLocation to a key in its account and region "
                    "(replicators in other stacks must name the key in their policies)",
                )
            if loc.account != self.source_location.account and access == CrossAccountAccess.RESOURCE_POLICY:
                raise ReplicationConfigError(
                    path,
                    f"replicas[{index}] is in account {loc.account} with a customer-managed key and "
                    "cross_account_access=RESOURCE_POLICY",
                    "use cross_account_access=CrossAccountAccess.WRITER_ROLE",
                )
        if self.mode == ReplicationMode.MULTI_ACTIVE and self.source_location.encryption_key_arn is None:
            raise ReplicationConfigError(
                path,
                "the source location has no encryption_key_arn, but in MULTI_ACTIVE mode other locations' "
                "replicators write to it and must name its key",
                "set encryption_key_arn on the source TableLocation",
            )

    def _resolve_migrations(
        self, source: TableLocation, replicas: Sequence[TableLocation], *, imported_source: bool
    ) -> dict[ResolvedTable, MigrationOptions]:
        """Replica locations with a ``migration``, each checked against the topology."""
        path = self.node.path
        if source.migration is not None:
            raise ReplicationConfigError(
                path,
                "the source TableLocation has a migration, but a migration loads a replica from the source",
                "move migration=MigrationOptions(...) to the replica TableLocation that is to be loaded",
            )
        migrations = {
            location: replica.migration
            for location, replica in zip(self.replica_locations, replicas)
            if replica.migration is not None
        }
        if not migrations:
            return migrations
        src = self.source_location
        if self.mode == ReplicationMode.MULTI_ACTIVE:
            raise ReplicationConfigError(
                path,
                "a replica has a migration in MULTI_ACTIVE mode, where every copy is a writer and the import "
                "would race the other regions' replicators",
                "use ONE_WAY for the initial load, or load the new region with `cdk-replication backfill "
                "--conflict-attribute`",
            )
        if self.table_options.local_secondary_indexes:
            names = ", ".join(lsi.index_name for lsi in self.table_options.local_secondary_indexes)
            raise ReplicationConfigError(
                path,
                f"a replica has a migration but the table has local secondary indexes ({names}); a table "
                "imported from S3 cannot have local secondary indexes",
                "drop migration and load the replica with `cdk-replication backfill` (the mapping can start "
                "disabled with ReplicatorOptions(enabled=False))",
            )
        if not imported_source and not self.table_options.point_in_time_recovery:
            raise ReplicationConfigError(
                path,
                "a replica has a migration but point_in_time_recovery is False; ExportTableToPointInTime "
                "reads the source's point-in-time recovery data",
                "keep point_in_time_recovery=True (the default)",
            )
        waiting = []
        for location, migration in migrations.items():
            what = f"migration of replica {location.table_name!r} ({location.account}/{location.region})"
            if migration.export_prefix is not None:
                require_export_prefix(path, migration.export_prefix, f"{what}: export_prefix")
            if migration.export_arn is None:
                waiting.append(location)
                if not migration.keep_bucket:
                    raise ReplicationConfigError(
                        path,
                        f"{what} has keep_bucket=False but no export_arn: there would be neither a bucket to "
                        "export into nor a table to create",
                        "keep the bucket until the export is done and export_arn is set",
                    )
                continue
            arn = parse_export_arn(path, migration.export_arn, f"{what}: export_arn")
            expected = (partition_for_region(src.region), src.region, src.account, src.table_name)
            actual = (arn["partition"], arn["region"], arn["account"], arn["table"])
            if actual != expected:
                raise ReplicationConfigError(
                    path,
                    f"{what}: export_arn {migration.export_arn!r} is an export of table {arn['table']!r} in "
                    f"{arn['account']}/{arn['region']}, not of the source {src.table_name!r} in "
                    f"{src.account}/{src.region}",
                    "use the ExportArn of an export of the source table",
                )
        if waiting and self._replicator_options.enabled:
            names = ", ".join(f"{loc.table_name!r} ({loc.account}/{loc.region})" for loc in waiting)
            raise ReplicationConfigError(
                path,
                f"ReplicatorOptions(enabled=True) but replica {names} has no export_arn yet, so the table does "
                "not exist and every replicated write to it would fail",
                "export, set migration.export_arn and deploy; enable the mapping only after the import",
            )
        return migrations

    def _ttl_attribute(self, mode: ReplicationMode, requested: str | None) -> str | None:
        """The tables' TTL attribute: multi-active tables always need one, for the replicator's tombstones."""
        if mode == ReplicationMode.MULTI_ACTIVE and requested is None:
            return self._replicator_options.metadata_prefix + defaults.TOMBSTONE_TTL_SUFFIX
        return requested

    # --- building ---------------------------------------------------------------------------------------

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
                    self._resource_policy(loc, [loc, *self.replica_locations])
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
        if self._cross_account_access != CrossAccountAccess.RESOURCE_POLICY:
            return None
        foreign = [w for w in writers if w != target and w.account != target.account]
        return replica_resource_policy(
            target,
            [(w.account, self._replicator_role_arn(w, Aws.PARTITION)) for w in foreign],
            self.mode,
            self.change_source,
        )

    def _target(self, writer: ResolvedTable, target: ResolvedTable) -> ReplicationTarget:
        if target.account == writer.account or self._cross_account_access == CrossAccountAccess.RESOURCE_POLICY:
            return ReplicationTarget(table=target)
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
            mode=self.mode,
            conflict_attribute=self._conflict_attribute,
            conflict_strategy=self._conflict_strategy,
            ttl_attribute=self._replica_options().time_to_live_attribute if self._tombstones else None,
            options=self._replicator_options,
            change_source=self.change_source,
            change_retention=self.kinesis_options.retention if self.kinesis_options is not None else None,
        )

    @property
    def _tombstones(self) -> bool:
        """The replicator keeps deletes as tombstones that expire through the tables' TTL attribute."""
        return self.mode == ReplicationMode.MULTI_ACTIVE or self.change_source == ChangeSource.KINESIS

    def _replica_options(self) -> TableOptions:
        """The replica tables' options: a one-way copy fed by Kinesis needs TTL for its tombstones even when the
        source has none (multi-active tables have it already, see ``_ttl_attribute``)."""
        if self.table_options.time_to_live_attribute is None and self._tombstones:
            return dataclasses.replace(
                self.table_options,
                time_to_live_attribute=self._replicator_options.metadata_prefix + defaults.TOMBSTONE_TTL_SUFFIX,
            )
        return self.table_options

    def _resolve_change_source(
        self,
        change_source: ChangeSource,
        kinesis_options: KinesisOptions | None,
        mode: ReplicationMode,
        existing_source: ExistingSource | None,
    ) -> KinesisOptions | None:
        """The data stream's options with ``KINESIS`` (checked), ``None`` with DynamoDB Streams."""
        path = self.node.path
        if change_source != ChangeSource.KINESIS:
            if kinesis_options is not None:
                raise ReplicationConfigError(
                    path,
                    "kinesis=KinesisOptions(...) is given but change_source is DYNAMODB_STREAMS",
                    "add change_source=ChangeSource.KINESIS, or drop kinesis",
                )
            return None
        # Checked before any stack is built (the Replicator checks it too).
        require_supported_change_source(path, mode, change_source)
        options = kinesis_options or KinesisOptions()
        if existing_source is not None and options.stream_arn is None:
            raise ReplicationConfigError(
                path,
                "change_source KINESIS with existing_source but no kinesis.stream_arn: CloudFormation can add a "
                "Kinesis streaming destination only to a table it manages",
                "enable the destination yourself (aws dynamodb enable-kinesis-streaming-destination --table-name "
                f"{self.source_location.table_name} --stream-arn <data stream ARN> "
                "--enable-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND) and "
                "pass kinesis=KinesisOptions(stream_arn=<data stream ARN>, retention=<its retention>)",
            )
        options.validate(path, self.source_location.region, self.source_location.account)
        return options


def _attr(attribute: dynamodb.Attribute | None) -> str:
    if attribute is None:
        return "None"
    return f"{attribute.name}:{attribute.type.name}"

