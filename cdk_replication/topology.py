"""Resolve, then build: ``ReplicatedTable``'s props turned into one frozen, fully-defaulted ``Topology``.

Everything here is a pure function of the props and the construct path the errors name: no construct is
created and nothing is synthesized, so the rules can be tested with plain values
(tests/constructs/test_topology.py). ``ReplicatedTable`` only builds what a ``Topology`` describes.

Each rule is checked once, here, in the order the constructor always checked them (a config with two
mistakes reports the same one first). The props are still CDK's own types (``dynamodb.Attribute``,
``TableEncryption``, ``Duration``, ...), so this module imports ``aws_cdk`` through them; it never creates a
construct.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb

from . import defaults
from .alarms import ReplicationAlarms
from .change_stream import KinesisOptions
from .errors import ReplicationConfigError
from .failure_destination import FailureDestination, FailureDestinationKind
from .migration import parse_export_arn, require_export_prefix
from .model import (
    ChangeSource,
    ConflictStrategy,
    CrossAccountAccess,
    ExistingSource,
    KeySchema,
    LocationStatus,
    MigrationOptions,
    ReplicationMode,
    ResolvedTable,
    TableLocation,
)
from .naming import (
    parse_stream_arn,
    partition_for_region,
    require_account,
    require_kms_key_arn,
    require_region,
    require_table_name,
)
from .replicator import ReplicatorOptions, require_no_conflict_settings_one_way, require_supported_change_source
from .tables import TableOptions


@dataclass(frozen=True)
class ReplicatedTableProps:
    """``ReplicatedTable``'s keyword arguments, after their types were checked (``props.check_arguments``).
    Defaults and meanings: see ``ReplicatedTable``."""

    source: TableLocation
    replicas: Sequence[TableLocation]
    partition_key: dynamodb.Attribute | None = None
    sort_key: dynamodb.Attribute | None = None
    billing_mode: dynamodb.BillingMode = defaults.BILLING_MODE
    read_capacity: int | None = None
    write_capacity: int | None = None
    global_secondary_indexes: Sequence[dynamodb.GlobalSecondaryIndexProps] = ()
    local_secondary_indexes: Sequence[dynamodb.LocalSecondaryIndexProps] = ()
    time_to_live_attribute: str | None = None
    encryption: dynamodb.TableEncryption = defaults.TABLE_ENCRYPTION
    point_in_time_recovery: bool = defaults.POINT_IN_TIME_RECOVERY
    deletion_protection: bool = defaults.DELETION_PROTECTION
    removal_policy: RemovalPolicy = defaults.REMOVAL_POLICY
    existing_source: ExistingSource | None = None
    mode: ReplicationMode = ReplicationMode.ONE_WAY
    conflict_attribute: str | None = None
    conflict_strategy: ConflictStrategy | None = None
    cross_account_access: CrossAccountAccess = CrossAccountAccess.WRITER_ROLE
    replicator: ReplicatorOptions | None = None
    stack_name_prefix: str | None = None
    change_source: ChangeSource = ChangeSource.DYNAMODB_STREAMS
    kinesis: KinesisOptions | None = None
    failure_destination: FailureDestination | None = None
    alarms: ReplicationAlarms | None = None
    dashboard: bool = defaults.DASHBOARD
    dashboard_name: str | None = None


#: CloudWatch dashboard names: letters, digits, '-' and '_', at most 255 characters.
_DASHBOARD_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


@dataclass(frozen=True)
class Operations:
    """How a ``ReplicatedTable``'s replicators are operated.

    Attributes:
        failure_destination: every replicator's on-failure destination (``FailureDestination.s3()`` unless
            given).
        alarms: every replicator's alarms (``ReplicationAlarms()`` unless given).
        dashboard: whether the source (first writer's) stack holds a dashboard.
        dashboard_name: its name as given; ``None``: ``<stack name prefix>-replication``.
    """

    failure_destination: FailureDestination
    alarms: ReplicationAlarms
    dashboard: bool
    dashboard_name: str | None


def resolve_operations(path: str, props: ReplicatedTableProps) -> Operations:
    """The operations props, defaulted and checked. An existing bucket is refused with several writers: each
    writer is in its own region, and one bucket cannot be every region's destination."""
    destination = props.failure_destination or FailureDestination.s3()
    destination.validate(path)
    if destination.kind == FailureDestinationKind.EXISTING_BUCKET and props.mode == ReplicationMode.MULTI_ACTIVE:
        raise ReplicationConfigError(
            path,
            "failure_destination is FailureDestination.existing_bucket(...) in MULTI_ACTIVE mode, where every "
            "location has a replicator in its own region that needs a destination there",
            "use FailureDestination.s3() (a bucket per replicator) or .sqs(), or compose Replicators yourself",
        )
    alarms = props.alarms or ReplicationAlarms()
    alarms.validate(path)
    name = props.dashboard_name
    if name is not None and (not isinstance(name, str) or not _DASHBOARD_NAME_RE.match(name)):
        raise ReplicationConfigError(
            path,
            f"dashboard_name {name!r} is not a CloudWatch dashboard name",
            "use 1-255 characters from A-Z a-z 0-9 - _, or leave it unset for '<stack name prefix>-replication'",
        )
    if name is not None and not props.dashboard:
        raise ReplicationConfigError(
            path, f"dashboard_name {name!r} is given but dashboard=False", "drop dashboard_name, or dashboard=True"
        )
    return Operations(destination, alarms, props.dashboard, name)


@dataclass(frozen=True)
class Topology:
    """What a ``ReplicatedTable`` builds, every default filled in and every rule checked.

    Attributes:
        mode / change_source / cross_account_access: as given (defaults filled in).
        source: the source (one-way) or first (multi-active) location, its table name resolved.
        replicas: the other locations, account and table name resolved, in the order given.
        existing_source: the imported source table, or ``None`` when it is created here.
        key: the key attribute names of every copy.
        table_options: the settings of the tables created here (multi-active: TTL on the tombstone attribute).
        replica_table_options: ``table_options`` of the replica tables: also with TTL where the replicator
            keeps tombstones (a Kinesis change source), since a one-way source may have none.
        replicator: the replicator options, checked and with their backlog-dependent defaults applied
            (``enabled=False`` and an unlimited record age while a replica has a migration).
        conflict_attribute / conflict_strategy: multi-active only, defaulted (``defaults.CONFLICT_ATTRIBUTE``,
            ``TIMESTAMP``); ``None`` in one-way mode.
        tombstone_ttl_attribute: where the replicator writes its tombstones' expiry
            (``REPLICATION_TTL_ATTRIBUTE``); ``None`` when it keeps no tombstones.
        migrations: replica location -> its initial load from an export.
        kinesis: the data stream options with ``KINESIS``, else ``None``.
        stack_name_prefix: the prefix of the stack names (before a ``Stage`` name is added). Default: the id.
        operations: failure destination, alarms and dashboard.
        statuses: location -> its ``LocationStatus`` (every location; ``ACTIVE`` unless given).
        awaiting_import: ``JOINING`` replicas whose migration has no ``export_arn`` yet in a topology with other
            ``ACTIVE`` replicas: their table does not exist, so no replicator sends to them yet (and the
            mapping is not disabled for them).
    """

    mode: ReplicationMode
    change_source: ChangeSource
    cross_account_access: CrossAccountAccess
    source: ResolvedTable
    replicas: tuple[ResolvedTable, ...]
    existing_source: ExistingSource | None
    key: KeySchema
    table_options: TableOptions
    replica_table_options: TableOptions
    replicator: ReplicatorOptions
    conflict_attribute: str | None
    conflict_strategy: ConflictStrategy | None
    tombstone_ttl_attribute: str | None
    migrations: Mapping[ResolvedTable, MigrationOptions] = field(default_factory=dict)
    kinesis: KinesisOptions | None = None
    stack_name_prefix: str = ""
    operations: Operations = field(
        default_factory=lambda: Operations(FailureDestination.s3(), ReplicationAlarms(), defaults.DASHBOARD, None)
    )
    statuses: Mapping[ResolvedTable, LocationStatus] = field(default_factory=dict)
    awaiting_import: frozenset[ResolvedTable] = frozenset()

    def status_of(self, location: ResolvedTable) -> LocationStatus:
        """The status of ``location`` (``ACTIVE`` unless given)."""
        return self.statuses.get(location, LocationStatus.ACTIVE)

    @property
    def locations(self) -> tuple[ResolvedTable, ...]:
        """The source, then the replicas."""
        return (self.source, *self.replicas)

    @property
    def writers(self) -> tuple[ResolvedTable, ...]:
        """The locations with a replicator: the source (one-way), or every location (multi-active)."""
        return (self.source,) if self.mode == ReplicationMode.ONE_WAY else self.locations

    def others(self, writer: ResolvedTable) -> tuple[ResolvedTable, ...]:
        """The locations ``writer``'s replicator writes to: every other one, except those ``awaiting_import``."""
        return tuple(loc for loc in self.locations if loc != writer and loc not in self.awaiting_import)


def resolve(path: str, default_name: str, props: ReplicatedTableProps) -> Topology:
    """The ``Topology`` of ``props``; ``default_name`` is the construct id (the default table name and stack
    prefix). Raises ``ReplicationConfigError`` naming ``path`` for the first rule ``props`` break."""
    options = props.replicator or ReplicatorOptions()
    options.validate(path)
    _check_mode(path, props)
    source = resolve_source(path, props.source, props.existing_source, default_name)
    replicas = resolve_replicas(path, props.replicas, source)
    kinesis = resolve_change_source(path, props, source)
    key = resolve_key(path, props.partition_key, props.sort_key, props.existing_source)
    table_options = _table_options(path, props, options.metadata_prefix)
    if props.existing_source is not None:
        check_existing_source(path, props.existing_source, source)
    check_encryption(path, props, source, replicas)
    migrations = resolve_migrations(path, props, source, replicas, table_options)
    statuses = resolve_statuses(path, props, source, replicas)
    joining_running = _joining_running_topology(statuses, replicas, migrations)
    tombstones = props.mode == ReplicationMode.MULTI_ACTIVE or props.change_source == ChangeSource.KINESIS
    replica_table_options = _with_tombstone_ttl(table_options, options.metadata_prefix) if tombstones else table_options
    multi_active = props.mode == ReplicationMode.MULTI_ACTIVE
    operations = resolve_operations(path, props)
    return Topology(
        mode=props.mode,
        change_source=props.change_source,
        cross_account_access=props.cross_account_access,
        source=source,
        replicas=replicas,
        existing_source=props.existing_source,
        key=key,
        table_options=table_options,
        replica_table_options=replica_table_options,
        replicator=resolve_replicator_options(
            path, options, {k: v for k, v in migrations.items() if k not in joining_running}, props.change_source,
            replicas, multi_active=multi_active,
        ),
        conflict_attribute=(props.conflict_attribute or defaults.CONFLICT_ATTRIBUTE) if multi_active else None,
        conflict_strategy=(props.conflict_strategy or ConflictStrategy.TIMESTAMP) if multi_active else None,
        tombstone_ttl_attribute=replica_table_options.time_to_live_attribute if tombstones else None,
        migrations=migrations,
        kinesis=kinesis,
        stack_name_prefix=props.stack_name_prefix or default_name,
        operations=operations,
        statuses=statuses,
        awaiting_import=frozenset(loc for loc in joining_running if migrations[loc].export_arn is None),
    )


def _check_mode(path: str, props: ReplicatedTableProps) -> None:
    """The props that only one mode accepts."""
    require_no_conflict_settings_one_way(path, props.mode, props.conflict_attribute, props.conflict_strategy)
    if props.mode == ReplicationMode.MULTI_ACTIVE and props.existing_source is not None:
        raise ReplicationConfigError(
            path,
            "existing_source is not supported in MULTI_ACTIVE mode (every location's table is created here)",
            "create the tables with this construct, or use ONE_WAY",
        )


# --- locations --------------------------------------------------------------------------------------------


def resolve_source(
    path: str, source: TableLocation, existing: ExistingSource | None, default_name: str
) -> ResolvedTable:
    """The source location: region, account and table name from the props, or (those not given) from
    ``existing.stream_arn``; the table name otherwise defaults to ``default_name``."""
    region, account, name = source.region, source.account, source.table_name
    if existing is not None:
        region, account, name = _located_by_stream_arn(path, source, existing)
    region = require_region(path, region, "source region")
    account = require_account(path, account, "source account")
    table_name = require_table_name(path, name if name is not None else default_name, "source table_name")
    key_arn = source.encryption_key_arn
    if key_arn is not None:
        require_kms_key_arn(path, key_arn, "source encryption_key_arn", region, account)
    return ResolvedTable(table_name=table_name, region=region, account=account, encryption_key_arn=key_arn)


def _located_by_stream_arn(path: str, source: TableLocation, existing: ExistingSource) -> tuple[str, str, str]:
    """Region, account and table name of an existing source: its stream ARN's, which ``source`` may repeat but
    not contradict. A token ARN is refused by ``parse_stream_arn`` (the stack layout needs the region)."""
    arn = parse_stream_arn(path, existing.stream_arn)
    if source.table_name is not None and source.table_name != arn["table"]:
        raise ReplicationConfigError(
            path,
            f"source table_name {source.table_name!r} differs from the table in existing_source.stream_arn "
            f"({arn['table']!r})",
            "use the stream ARN of that table, or leave table_name unset",
        )
    for field, given in (("region", source.region), ("account", source.account)):
        if given is not None and given != arn[field]:
            raise ReplicationConfigError(
                path,
                f"source {field} {given!r} differs from the {field} of existing_source.stream_arn ({arn[field]!r})",
                f"leave source {field} unset (it is taken from the stream ARN), or use the stream ARN of the "
                f"table in {given!r}",
            )
    return arn["region"], arn["account"], arn["table"]


def resolve_replicas(path: str, replicas: Sequence[TableLocation], src: ResolvedTable) -> tuple[ResolvedTable, ...]:
    """The replica locations, each with the source's account and table name where not given, each distinct."""
    if not replicas:
        raise ReplicationConfigError(path, "replicas is empty", "give at least one TableLocation to copy to")
    seen: dict[tuple[str, str, str], int] = {(src.account, src.region, src.table_name): -1}
    resolved = []
    for index, replica in enumerate(replicas):
        location = _resolve_replica(path, f"replicas[{index}]", replica, src)
        key = (location.account, location.region, location.table_name)
        if key in seen:
            _refuse_duplicate(path, f"replicas[{index}]", location, seen[key])
        seen[key] = index
        if location.encryption_key_arn is not None:
            require_kms_key_arn(
                path, location.encryption_key_arn, f"replicas[{index}] encryption_key_arn", location.region,
                location.account,
            )
        resolved.append(location)
    return tuple(resolved)


def _resolve_replica(path: str, what: str, replica: TableLocation, src: ResolvedTable) -> ResolvedTable:
    if replica.region is None:
        raise ReplicationConfigError(path, f"{what} has no region", 'set region="<region>" on that TableLocation')
    region = require_region(path, replica.region, f"{what} region")
    account = require_account(path, replica.account if replica.account is not None else src.account, f"{what} account")
    table_name = require_table_name(
        path, replica.table_name if replica.table_name is not None else src.table_name, f"{what} table_name"
    )
    return ResolvedTable(table_name, region, account, replica.encryption_key_arn)


def _refuse_duplicate(path: str, what: str, location: ResolvedTable, earlier: int) -> None:
    """Raise for a replica at the place of the source (``earlier`` -1) or of replica ``earlier``."""
    account, region, table_name = location.account, location.region, location.table_name
    if earlier == -1:
        raise ReplicationConfigError(
            path,
            f"{what} is in the source's account {account} and region {region} with the same table "
            f"name {table_name!r}",
            "give a same-region copy a distinct table_name (e.g. an audit/history name)",
        )
    raise ReplicationConfigError(
        path,
        f"{what} duplicates replicas[{earlier}] (account {account}, region {region}, table {table_name!r})",
        "list each replica location once",
    )


def resolve_change_source(path: str, props: ReplicatedTableProps, source: ResolvedTable) -> KinesisOptions | None:
    """The data stream's options with ``KINESIS`` (checked), ``None`` with DynamoDB Streams."""
    if props.change_source != ChangeSource.KINESIS:
        if props.kinesis is not None:
            raise ReplicationConfigError(
                path,
                "kinesis=KinesisOptions(...) is given but change_source is DYNAMODB_STREAMS",
                "add change_source=ChangeSource.KINESIS, or drop kinesis",
            )
        return None
    require_supported_change_source(path, props.mode, props.change_source)
    options = props.kinesis or KinesisOptions()
    if props.existing_source is not None and options.stream_arn is None:
        raise ReplicationConfigError(
            path,
            "change_source KINESIS with existing_source but no kinesis.stream_arn: CloudFormation can add a "
            "Kinesis streaming destination only to a table it manages",
            "enable the destination yourself (aws dynamodb enable-kinesis-streaming-destination --table-name "
            f"{source.table_name} --stream-arn <data stream ARN> "
            "--enable-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND) and "
            "pass kinesis=KinesisOptions(stream_arn=<data stream ARN>, retention=<its retention>)",
        )
    options.validate(path, source.region, source.account)
    return options


# --- key and table settings -------------------------------------------------------------------------------


def resolve_key(
    path: str,
    partition_key: dynamodb.Attribute | None,
    sort_key: dynamodb.Attribute | None,
    existing: ExistingSource | None,
) -> KeySchema:
    """The key, given on the construct or on ``existing`` (both must agree where both are given)."""
    if existing is not None and existing.partition_key is not None and partition_key is not None:
        _require_same_key(path, partition_key, sort_key, existing)
    pk, sk = _key_attributes(partition_key, sort_key, existing)
    if pk is None:
        raise ReplicationConfigError(
            path,
            "no partition_key is given",
            "pass partition_key=dynamodb.Attribute(name=..., type=...) (for an existing source: its key)",
        )
    return KeySchema(partition_key=pk.name, sort_key=sk.name if sk is not None else None)


def _key_attributes(
    partition_key: dynamodb.Attribute | None, sort_key: dynamodb.Attribute | None, existing: ExistingSource | None
) -> tuple[dynamodb.Attribute | None, dynamodb.Attribute | None]:
    """(partition key, sort key): the construct's, else the existing source's."""
    pk = partition_key or (existing.partition_key if existing else None)
    sk = sort_key or (existing.sort_key if existing else None)
    return pk, sk


def _require_same_key(
    path: str, partition_key: dynamodb.Attribute, sort_key: dynamodb.Attribute | None, existing: ExistingSource
) -> None:
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


def _attr(attribute: dynamodb.Attribute | None) -> str:
    if attribute is None:
        return "None"
    return f"{attribute.name}:{attribute.type.name}"


def _table_options(path: str, props: ReplicatedTableProps, metadata_prefix: str) -> TableOptions:
    """The settings of every table created here (checked). Multi-active tables always get a TTL attribute,
    for the replicator's tombstones: the one given, else ``<metadata_prefix>expiresAt``."""
    pk, sk = _key_attributes(props.partition_key, props.sort_key, props.existing_source)
    assert pk is not None  # resolve_key refused it
    ttl = props.time_to_live_attribute
    if props.mode == ReplicationMode.MULTI_ACTIVE and ttl is None:
        ttl = metadata_prefix + defaults.TOMBSTONE_TTL_SUFFIX
    options = TableOptions(
        partition_key=pk,
        sort_key=sk,
        billing_mode=props.billing_mode,
        read_capacity=props.read_capacity,
        write_capacity=props.write_capacity,
        global_secondary_indexes=tuple(props.global_secondary_indexes),
        local_secondary_indexes=tuple(props.local_secondary_indexes),
        time_to_live_attribute=ttl,
        encryption=props.encryption,
        point_in_time_recovery=props.point_in_time_recovery,
        deletion_protection=props.deletion_protection,
        removal_policy=props.removal_policy,
    )
    options.validate(path)
    return options


def _with_tombstone_ttl(options: TableOptions, metadata_prefix: str) -> TableOptions:
    """``options`` with a TTL attribute for the replicator's tombstones where they have none (a one-way copy
    fed by Kinesis, whose source may have no TTL)."""
    if options.time_to_live_attribute is not None:
        return options
    return dataclasses.replace(options, time_to_live_attribute=metadata_prefix + defaults.TOMBSTONE_TTL_SUFFIX)


def check_existing_source(path: str, existing: ExistingSource, source: ResolvedTable) -> None:
    """An imported source must stream both images, from the source's own account, region and partition."""
    view = existing.stream_view_type
    if view != dynamodb.StreamViewType.NEW_AND_OLD_IMAGES:
        shown = view.name if view is not None else "no stream"
        raise ReplicationConfigError(
            path,
            f"existing source table {source.table_name!r} has stream view {shown}; the "
            "replicator needs both images to apply deletes and to recognise its own writes",
            "enable the stream with NEW_AND_OLD_IMAGES (aws dynamodb update-table --stream-specification "
            "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES) and declare stream_view_type="
            "StreamViewType.NEW_AND_OLD_IMAGES with the new stream ARN",
        )
    # The region and account agree with the source's: resolve_source took them from the ARN or compared them.
    arn = parse_stream_arn(path, existing.stream_arn)
    if arn["partition"] != partition_for_region(source.region):
        raise ReplicationConfigError(
            path,
            f"existing_source.stream_arn partition {arn['partition']!r} does not match region {source.region}",
            "use the ARN exactly as describe-table returns it",
        )


def check_encryption(
    path: str, props: ReplicatedTableProps, source: ResolvedTable, replicas: Sequence[ResolvedTable]
) -> None:
    """``encryption`` applies to the tables this construct creates. An imported source keeps its own
    encryption; its key ARN (if any) is only needed to decrypt its stream."""
    imported_source = props.existing_source is not None
    created = [*([] if imported_source else [source]), *replicas]
    if props.encryption != dynamodb.TableEncryption.CUSTOMER_MANAGED:
        keyed = [loc for loc in created if loc.encryption_key_arn]
        if keyed:
            raise ReplicationConfigError(
                path,
                f"encryption_key_arn is set for table {keyed[0].table_name!r} in {keyed[0].region} but "
                f"encryption is {props.encryption.name}",
                "set encryption=TableEncryption.CUSTOMER_MANAGED, or drop the key ARN",
            )
        return
    for index, loc in enumerate(replicas):
        _check_replica_key(path, index, loc, source, props.cross_account_access)
    if props.mode == ReplicationMode.MULTI_ACTIVE and source.encryption_key_arn is None:
        raise ReplicationConfigError(
            path,
            "the source location has no encryption_key_arn, but in MULTI_ACTIVE mode other locations' "
            "replicators write to it and must name its key",
            "set encryption_key_arn on the source TableLocation",
        )


def _check_replica_key(
    path: str, index: int, loc: ResolvedTable, source: ResolvedTable, access: CrossAccountAccess
) -> None:
    """With ``CUSTOMER_MANAGED`` encryption: replica ``index`` names its key, usable by the writer."""
    if loc.encryption_key_arn is None:
        raise ReplicationConfigError(
            path,
            f"replicas[{index}] ({loc.table_name!r} in {loc.region}) has no encryption_key_arn but "
            "encryption is CUSTOMER_MANAGED",
            "set encryption_key_arn on that TableLocation to a key in its account and region "
            "(replicators in other stacks must name the key in their policies)",
        )
    if loc.account != source.account and access == CrossAccountAccess.RESOURCE_POLICY:
        raise ReplicationConfigError(
            path,
            f"replicas[{index}] is in account {loc.account} with a customer-managed key and "
            "cross_account_access=RESOURCE_POLICY",
            "use cross_account_access=CrossAccountAccess.WRITER_ROLE",
        )


# --- statuses ---------------------------------------------------------------------------------------------


def resolve_statuses(
    path: str, props: ReplicatedTableProps, source: ResolvedTable, replicas: Sequence[ResolvedTable]
) -> dict[ResolvedTable, LocationStatus]:
    """Every location's ``LocationStatus``, checked against the mode.

    One-way: the source is ``ACTIVE`` (it is where the application writes and what every replica copies);
    a replica may be ``JOINING`` but not ``LEAVING`` (nothing is written there but by the replicator, so
    there is nothing to drain: it is removed directly). Multi-active: at least one location is ``ACTIVE``
    (somewhere the application may write, and that a joining region copies from), and at least two are not
    ``LEAVING`` (a multi-active table needs two locations once the leaving ones are removed).
    """
    statuses = {source: props.source.status, **{loc: given.status for loc, given in zip(replicas, props.replicas)}}
    if props.mode == ReplicationMode.ONE_WAY:
        _check_one_way_statuses(path, props, replicas)
        return statuses
    shown = ", ".join(f"{loc.region}: {status.value}" for loc, status in statuses.items())
    if LocationStatus.ACTIVE not in statuses.values():
        raise ReplicationConfigError(
            path,
            f"no location is ACTIVE ({shown}): the application may write to none of them, and a JOINING region "
            "copies from the existing ones",
            "keep at least one location ACTIVE; add or remove regions one step at a time",
        )
    staying = [loc for loc, status in statuses.items() if status != LocationStatus.LEAVING]
    if len(staying) < 2:
        raise ReplicationConfigError(
            path,
            f"only {len(staying)} location would stay once the LEAVING ones are removed ({shown}); a "
            "MULTI_ACTIVE table needs at least two",
            "add a JOINING region first (it may join while another leaves), or keep the location ACTIVE",
        )
    if props.source.status == LocationStatus.LEAVING:
        _refuse_leaving_multi_active_source(path, source)
    if props.source.status == LocationStatus.JOINING:
        _refuse_joining_multi_active_source(path, source)
    return statuses


def _refuse_joining_multi_active_source(path: str, source: ResolvedTable) -> None:
    """A JOINING region joins a running topology, whose ``source=`` is already deployed with the source's logical
    ids; naming the newcomer ``source=`` moves the running source into ``replicas``, with new logical ids for its
    named resources: the renaming :func:`_refuse_leaving_multi_active_source` explains."""
    raise ReplicationConfigError(
        path,
        f"the source TableLocation ({source.table_name!r} in {source.account}/{source.region}) has status=JOINING "
        "in MULTI_ACTIVE mode, but a JOINING region joins a running topology whose source= is already deployed: "
        "naming the new region source= gives the running source's table, replicator function and role new "
        "logical ids, and CloudFormation cannot deploy that change",
        "keep the deployed source as source= and add the new region to replicas with status=JOINING",
    )


def _refuse_leaving_multi_active_source(path: str, source: ResolvedTable) -> None:
    """The ``source=`` region of a multi-active table cannot leave: writing the topology without it means naming
    another region ``source=``, which gives that region's table, replicator, role, mapping and parameters new
    logical ids (the source's are ``SourceTable``/``Replicator``, the others' ``Replica-``/``Replicator-<table>``),
    and CloudFormation cannot replace resources with fixed physical names. Making the ids independent of the
    source would rename every deployed multi-active stack's resources, the same failure."""
    raise ReplicationConfigError(
        path,
        f"the source TableLocation ({source.table_name!r} in {source.account}/{source.region}) has status=LEAVING "
        "in MULTI_ACTIVE mode, but it cannot be removed: the topology without it names another region source=, "
        "which changes the logical ids of that region's named resources (table, replicator function and role, "
        "parameters), and CloudFormation cannot deploy that change",
        "leave the source's status unset (ACTIVE; your application may simply stop writing there, it keeps "
        "receiving every change) and let other regions leave; to retire the source region, deploy a new "
        "MULTI_ACTIVE ReplicatedTable (other table name or stack_name_prefix) without it and move the application",
    )


def _check_one_way_statuses(path: str, props: ReplicatedTableProps, replicas: Sequence[ResolvedTable]) -> None:
    if props.source.status != LocationStatus.ACTIVE:
        raise ReplicationConfigError(
            path,
            f"the source TableLocation has status={props.source.status.value} in ONE_WAY mode; the source is "
            "where the application writes and what every replica is copied from",
            "leave the source's status unset (ACTIVE); JOINING is for a new replica",
        )
    for index, (location, given) in enumerate(zip(replicas, props.replicas)):
        if given.status == LocationStatus.LEAVING:
            raise ReplicationConfigError(
                path,
                f"replicas[{index}] ({location.table_name!r} in {location.account}/{location.region}) has "
                "status=LEAVING in ONE_WAY mode, where only the replicator writes a replica, so there is nothing "
                "to drain",
                "remove that TableLocation from replicas and deploy (its table is retained)",
            )


def _joining_running_topology(
    statuses: Mapping[ResolvedTable, LocationStatus],
    replicas: Sequence[ResolvedTable],
    migrations: Mapping[ResolvedTable, MigrationOptions],
) -> frozenset[ResolvedTable]:
    """The replicas with a migration that join (or joined) a running topology, whose load does not disable the
    mapping (the other replicas keep being replicated to):

    * ``JOINING``, while another replica is ``ACTIVE`` and loaded (not itself waiting for an export);
    * ``ACTIVE`` with ``export_arn`` set (the import done: ``ImportSourceSpecification`` stays in the app for
      the table's lifetime), while another ``ACTIVE`` replica has no migration at all: the last step of a join
      from an export. Such a replica went through ``JOINING`` with the mapping running, so setting it
      ``ACTIVE`` must not pause replication to every replica. (An initial load of every replica at once, the
      cross-account walkthrough, has no replica without a migration: its mapping stays disabled until enabled.)
    """
    def active(loc: ResolvedTable) -> bool:
        return statuses[loc] == LocationStatus.ACTIVE

    live = [loc for loc in replicas if active(loc) and (loc not in migrations or migrations[loc].export_arn is not None)]
    if not live:
        return frozenset()
    running_without_migration = any(active(loc) and loc not in migrations for loc in replicas)
    return frozenset(loc for loc, migration in migrations.items() if statuses[loc] == LocationStatus.JOINING
                     or (running_without_migration and active(loc) and migration.export_arn is not None))


# --- migrations and the replicator's options ---------------------------------------------------------------


def resolve_migrations(
    path: str,
    props: ReplicatedTableProps,
    source: ResolvedTable,
    replicas: Sequence[ResolvedTable],
    table_options: TableOptions,
) -> dict[ResolvedTable, MigrationOptions]:
    """Replica locations with a ``migration``, each checked against the topology."""
    if props.source.migration is not None:
        raise ReplicationConfigError(
            path,
            "the source TableLocation has a migration, but a migration loads a replica from the source",
            "move migration=MigrationOptions(...) to the replica TableLocation that is to be loaded",
        )
    migrations = {
        location: replica.migration
        for location, replica in zip(replicas, props.replicas)
        if replica.migration is not None
    }
    if migrations:
        _check_migrations_allowed(path, props, table_options)
        for location, migration in migrations.items():
            _check_migration(path, location, migration, source)
    return migrations


def _check_migrations_allowed(path: str, props: ReplicatedTableProps, table_options: TableOptions) -> None:
    """The topology-wide conditions of an initial load from an export."""
    if props.mode == ReplicationMode.MULTI_ACTIVE:
        raise ReplicationConfigError(
            path,
            "a replica has a migration in MULTI_ACTIVE mode, where every copy is a writer and the import "
            "would race the other regions' replicators",
            "use ONE_WAY for the initial load, or load the new region with `cdk-replication backfill "
            "--conflict-attribute`",
        )
    if table_options.local_secondary_indexes:
        names = ", ".join(lsi.index_name for lsi in table_options.local_secondary_indexes)
        raise ReplicationConfigError(
            path,
            f"a replica has a migration but the table has local secondary indexes ({names}); a table "
            "imported from S3 cannot have local secondary indexes",
            "drop migration and load the replica with `cdk-replication backfill` (the mapping can start "
            "disabled with ReplicatorOptions(enabled=False))",
        )
    if props.existing_source is None and not table_options.point_in_time_recovery:
        raise ReplicationConfigError(
            path,
            "a replica has a migration but point_in_time_recovery is False; ExportTableToPointInTime "
            "reads the source's point-in-time recovery data",
            "keep point_in_time_recovery=True (the default)",
        )


def _check_migration(path: str, location: ResolvedTable, migration: MigrationOptions, src: ResolvedTable) -> None:
    what = f"migration of replica {location.table_name!r} ({location.account}/{location.region})"
    if migration.export_prefix is not None:
        require_export_prefix(path, migration.export_prefix, f"{what}: export_prefix")
    if migration.export_arn is None:
        if not migration.keep_bucket:
            raise ReplicationConfigError(
                path,
                f"{what} has keep_bucket=False but no export_arn: there would be neither a bucket to "
                "export into nor a table to create",
                "keep the bucket until the export is done and export_arn is set",
            )
        return
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


def resolve_replicator_options(
    path: str,
    options: ReplicatorOptions,
    migrations: Mapping[ResolvedTable, MigrationOptions],
    change_source: ChangeSource,
    replicas: Sequence[ResolvedTable],
    multi_active: bool = False,
) -> ReplicatorOptions:
    """``options`` (already validated) with the defaults that depend on the topology (the replication path's
    parallelization factor and batch size among them: ``multi_active``, the change source), marked as checked so
    that the ``Replicator`` built from them does not check them again.

    While a replica has a migration the mapping is created disabled unless ``enabled`` is given (the safe
    order: load the copy first, then apply the stream from ``TRIM_HORIZON``), and ``enabled=True`` is refused
    while a replica still waits for its export. A migration or a Kinesis change source starts the mapping
    with a backlog, which lifts the default maximum record age.
    """
    waiting = [location for location in replicas if location in migrations and migrations[location].export_arn is None]
    if waiting and options.enabled:
        names = ", ".join(f"{loc.table_name!r} ({loc.account}/{loc.region})" for loc in waiting)
        raise ReplicationConfigError(
            path,
            f"ReplicatorOptions(enabled=True) but replica {names} has no export_arn yet, so the table does "
            "not exist and every replicated write to it would fail",
            "export, set migration.export_arn and deploy; enable the mapping only after the import",
        )
    if migrations and options.enabled is None:
        options = dataclasses.replace(options, enabled=False)
    backlog = bool(migrations) or change_source == ChangeSource.KINESIS
    kinesis = change_source == ChangeSource.KINESIS
    return options.with_backlog(path, backlog=backlog).with_path_defaults(multi_active, kinesis).checked()
