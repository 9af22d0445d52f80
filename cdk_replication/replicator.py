"""The replicator: function, its own role and log group, the stream mapping, its failure destination and alarms."""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from . import _lambda, defaults
from ._lambda.replicator import contract
from .alarms import AlarmTarget, ReplicationAlarms, create_alarms
from .errors import ReplicationConfigError
from .failure_destination import FailureDestination
from .failure_destination import build as build_failure_destination
from .model import ChangeSource, ConflictStrategy, KeySchema, ReplicationMode, ReplicationTarget, ResolvedTable
from .naming import require_function_name
from .permissions import (
    FAILURE_RECORD_KEY_PREFIX,
    acknowledge_nag,
    acknowledge_replicator_role,
    failure_bucket_statements,
    failure_queue_statements,
    replicator_statements,
)
from .props import check_arguments

#: Lambda limits (AWS::Lambda::EventSourceMapping / AWS::Lambda::Function) the options are checked against.
_MAX_ENV_BYTES = 4096
_METADATA_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


def lambda_source_dir() -> Path:
    """The folder that holds the replicator package and nothing else of ours (the Lambda asset): the
    repository's ``lambda_src/`` in a checkout, ``cdk_replication/_lambda/`` in an installed wheel."""
    return _lambda.ASSET_ROOT


class _DefaultRecordAge:
    """The default of ``ReplicatorOptions.max_record_age``: ``defaults.MAX_RECORD_AGE``, or no limit where
    the mapping starts with a backlog older than that (see ``ReplicatorOptions.resolved_max_record_age``).

    A class of its own rather than the default ``Duration`` object, so that an explicit value (even one equal
    to the default) is kept, and so that copies of the options still carry "not given".
    """

    def __repr__(self) -> str:
        return "DEFAULT_MAX_RECORD_AGE"

    def __copy__(self) -> "_DefaultRecordAge":
        return self

    def __deepcopy__(self, memo: object) -> "_DefaultRecordAge":
        return self


#: ``ReplicatorOptions.max_record_age`` when not given.
DEFAULT_MAX_RECORD_AGE = _DefaultRecordAge()


@dataclass(frozen=True)
class ReplicatorOptions:
    """Tunables of the replicator function and its event source mapping. Every default is in ``defaults``.

    Attributes:
        memory_size: function memory in MiB (128-10240). Default: 1024.
        timeout: per-invocation timeout (1 s-15 min). Default: 60 s.
        runtime: Lambda runtime. Default: Python 3.13.
        log_retention: retention of the function's own log group. Default: one month.
        log_level: replicator log level (``LOG_LEVEL``). Default: ``"INFO"``.
        metadata_prefix: prefix of the replicator's metadata attributes. Default: ``"_rep_"``.
        max_concurrency: concurrent writes per invocation (``REPLICATION_MAX_CONCURRENCY``, 1-512). Default: 128.
        starting_position: where a new mapping starts reading. Default: ``TRIM_HORIZON``.
        batch_size: records per invocation (1-10000). Default: per replication path
            (``defaults.MAPPING_DEFAULTS``): 1000 for one-way fed by DynamoDB Streams; 100 for multi-active and
            for one-way fed by Kinesis, whose conditional writes cost ~1 ms of CPU each, so the rate comes from
            the parallelization factor and each batch (the lag) stays short. ``None`` selects the default.
        max_batching_window: wait for a fuller batch (0-300 s). Default: 0 s.
        retry_attempts: retries of a failed batch (-1 = until the record expires, 0-10000). Default: 10.
        max_record_age: records older than this go to the failure destination (60 s-7 days; ``None`` = never,
            Lambda's -1). Default: 1 hour, or ``None`` where the mapping starts with a backlog older than an
            hour: a Kinesis change source, or a mapping created disabled for a migration in a
            ``ReplicatedTable`` (``defaults.BACKLOG_MAX_RECORD_AGE``). A value
            given is kept. Unlimited retries with an unlimited age are refused (a poison record would hold
            its shard).
        bisect_batch_on_error: split a failing batch and retry the halves. Default: ``True``.
        report_batch_item_failures: must stay ``True`` (the mapping's ``ReportBatchItemFailures``). Default:
            ``True``.
            The replicator always answers with a partial batch response naming the first record it could not
            apply; with ``False`` Lambda would ignore that answer, take the batch as done and lose those
            records silently (rule 6), so ``False`` is refused at synth time. Kept only so that code passing
            ``True`` keeps working.
        parallelization_factor: concurrent batches per shard (1-10). Lambda keeps each partition key's
            records in order at any factor (one key is never in two concurrent batches), so this is a
            throughput setting; reserve concurrency for shards x factor. Default: per replication path
            (``defaults.MAPPING_DEFAULTS``): 1 for one-way fed by DynamoDB Streams; 5 for multi-active and
            for one-way fed by Kinesis, so that one saturated shard (1,000 records/s) is carried at the
            default memory across 100 ms (docs/performance.md). ``None`` selects the default.
        enabled: create the mapping enabled. Default: ``None``, which means enabled, except in a ``ReplicatedTable``
            with a replica ``migration``, where the mapping starts disabled so the copy is loaded before the
            stream is applied; set ``True`` explicitly once the load is done. ``False`` for a scan-based
            backfill (enable after it).
    """

    memory_size: int = defaults.MEMORY_SIZE_MIB
    timeout: Duration = defaults.TIMEOUT
    runtime: lambda_.Runtime = defaults.RUNTIME
    log_retention: logs.RetentionDays = defaults.LOG_RETENTION
    log_level: str = defaults.LOG_LEVEL
    metadata_prefix: str = defaults.METADATA_PREFIX
    max_concurrency: int = defaults.MAX_CONCURRENCY
    starting_position: lambda_.StartingPosition = defaults.STARTING_POSITION
    batch_size: int | None = None
    max_batching_window: Duration = defaults.MAX_BATCHING_WINDOW
    retry_attempts: int = defaults.RETRY_ATTEMPTS
    max_record_age: Duration | None | _DefaultRecordAge = DEFAULT_MAX_RECORD_AGE
    bisect_batch_on_error: bool = defaults.BISECT_BATCH_ON_ERROR
    report_batch_item_failures: bool = defaults.REPORT_BATCH_ITEM_FAILURES
    parallelization_factor: int | None = None
    enabled: bool | None = None
    #: Set by ``checked()`` only: these options were validated and their backlog default applied, so a
    #: ``Replicator`` given them does not check them again. Not an init field: ``dataclasses.replace``
    #: makes an unchecked copy, so changed options are always checked.
    _checked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def max_record_age_is_default(self) -> bool:
        """``max_record_age`` was not given, so a backlog may lift it."""
        return isinstance(self.max_record_age, _DefaultRecordAge)

    def resolved_max_record_age(self, backlog: bool) -> Duration | None:
        """The maximum record age in effect: the given value, else ``defaults.MAX_RECORD_AGE``, or ``None``
        (``defaults.BACKLOG_MAX_RECORD_AGE``) when the mapping starts with a ``backlog``."""
        if isinstance(self.max_record_age, _DefaultRecordAge):
            return defaults.BACKLOG_MAX_RECORD_AGE if backlog else defaults.MAX_RECORD_AGE
        return self.max_record_age

    def with_backlog(self, path: str, backlog: bool) -> "ReplicatorOptions":
        """These options with ``max_record_age`` resolved; a backlog lifts the default age limit.

        Raises:
            ReplicationConfigError: retries are unlimited too, so a poison record would hold its shard until
                the stream drops it (rule 6).
        """
        resolved = dataclasses.replace(self, max_record_age=self.resolved_max_record_age(backlog))
        if resolved.retry_attempts == -1 and resolved.max_record_age is None:
            raise ReplicationConfigError(
                path,
                "retry_attempts is -1 (unlimited) and the maximum record age is unlimited too"
                + (" (the default where the mapping starts with a backlog)" if self.max_record_age_is_default else ""),
                "bound the retries (retry_attempts=10 is the default; bisection still isolates a poison record) "
                "or set max_record_age",
            )
        return resolved

    def with_path_defaults(self, multi_active: bool, kinesis: bool) -> "ReplicatorOptions":
        """These options with the parallelization factor and batch size of the replication path filled in
        where not given (``defaults.mapping_defaults``)."""
        factor, batch_size = defaults.mapping_defaults(multi_active, kinesis)
        return dataclasses.replace(
            self,
            parallelization_factor=factor if self.parallelization_factor is None else self.parallelization_factor,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
        )

    def checked(self) -> "ReplicatorOptions":
        """These options marked as validated and resolved (call only after ``validate`` and ``with_backlog``)."""
        object.__setattr__(self, "_checked", True)
        return self

    def resolve(self, path: str, backlog: bool, *, multi_active: bool = False, kinesis: bool = False) -> "ReplicatorOptions":
        """Validated, with the ``backlog``-dependent default and the defaults of the replication path
        (``multi_active``, fed by ``kinesis``) applied: once (options already checked are returned as they
        are, so the rules run where the values are first used)."""
        if self._checked:
            return self
        self.validate(path)
        resolved = self.with_backlog(path, backlog=backlog).with_path_defaults(multi_active, kinesis)
        return resolved.checked()

    def validate(self, path: str) -> None:
        """Raise ``ReplicationConfigError`` naming ``path`` for values Lambda would reject."""
        _in_range(path, "memory_size (MiB)", self.memory_size, 128, 10240)
        _in_range(path, "timeout (seconds)", _seconds(path, "timeout", self.timeout), 1, 900)
        if self.batch_size is not None:
            _in_range(path, "batch_size", self.batch_size, 1, 10000)
        _in_range(
            path, "max_batching_window (seconds)", _seconds(path, "max_batching_window", self.max_batching_window), 0, 300
        )
        if self.retry_attempts != -1:
            _in_range(path, "retry_attempts", self.retry_attempts, 0, 10000, extra="or -1 for unlimited")
        if isinstance(self.max_record_age, Duration):
            age = _seconds(path, "max_record_age", self.max_record_age)
            _in_range(path, "max_record_age (seconds)", age, 60, 604800, extra="or None for unlimited")
        if self.parallelization_factor is not None:
            _in_range(path, "parallelization_factor", self.parallelization_factor, 1, 10)
        if self.report_batch_item_failures is not True:
            # Lambda reads the partial batch response only with ReportBatchItemFailures; without it an invocation
            # that returns normally is a success, and the records the replicator reported are checkpointed past.
            raise ReplicationConfigError(
                path,
                f"report_batch_item_failures={self.report_batch_item_failures!r}: Lambda would ignore the "
                "replicator's partial batch response, take every batch as applied and drop the records that "
                "failed silently",
                "drop report_batch_item_failures (it must be True, the default); bisect_batch_on_error, "
                "retry_attempts and max_record_age tune how failed records are retried",
            )
        # The replicator caps REPLICATION_MAX_CONCURRENCY at 512 (one thread and pooled connection each).
        _in_range(path, "max_concurrency", self.max_concurrency, 1, 512)
        if not _METADATA_PREFIX_RE.match(self.metadata_prefix):
            raise ReplicationConfigError(
                path,
                f"metadata_prefix {self.metadata_prefix!r} is not a usable attribute-name prefix",
                "use 1-32 characters from A-Z a-z 0-9 _ . -, e.g. '_rep_'",
            )


def _resolve_options(
    path: str, options: ReplicatorOptions | None, mode: ReplicationMode, change_source: ChangeSource
) -> ReplicatorOptions:
    """``options`` (default: ``ReplicatorOptions()``) checked, with the defaults of the replication path; a
    Kinesis change source starts with a backlog."""
    kinesis = change_source == ChangeSource.KINESIS
    return (options or ReplicatorOptions()).resolve(
        path, backlog=kinesis, multi_active=mode == ReplicationMode.MULTI_ACTIVE, kinesis=kinesis
    )


def _check_change_retention(path: str, change_source: ChangeSource, change_retention: Duration | None) -> None:
    """``change_retention`` only with a Kinesis change source (a DynamoDB stream keeps 24 h, fixed)."""
    if change_source != ChangeSource.KINESIS and change_retention is not None:
        raise ReplicationConfigError(
            path, "change_retention is set but change_source is DYNAMODB_STREAMS (24 h, fixed)",
            "drop change_retention, or use change_source=ChangeSource.KINESIS",
        )


def _operations(
    path: str, failure_destination: FailureDestination | None, alarms: ReplicationAlarms | None
) -> tuple[FailureDestination, ReplicationAlarms]:
    """The failure destination and alarms, defaulted (``FailureDestination.s3()``, ``ReplicationAlarms()``)
    and checked."""
    failure_destination = failure_destination or FailureDestination.s3()
    failure_destination.validate(path)
    alarms = alarms or ReplicationAlarms()
    alarms.validate(path)
    return failure_destination, alarms


def _seconds(path: str, name: str, value: Duration) -> int:
    if Token.is_unresolved(value.to_seconds()):
        raise ReplicationConfigError(path, f"{name} is a token", f"pass a literal Duration for {name}")
    return int(value.to_seconds())


def _in_range(path: str, name: str, value: int, low: int, high: int, extra: str = "") -> None:
    if not low <= value <= high:
        suffix = f" {extra}" if extra else ""
        raise ReplicationConfigError(
            path, f"{name} is {value}, outside what Lambda accepts", f"use {low}-{high}{suffix}"
        )


class Replicator(Construct):
    """Reads one table's stream and writes every change to its targets.

    Holds the function, a role written for exactly this function, the function's log group, the event
    source mapping (with its ``EventCount`` metrics on), its failure destination (by default an S3 bucket that
    receives every batch the replicator could not apply, records included) and its alarms. Usable on its own
    in any stack with an explicit account and region equal to the source's.

    Args:
        scope: parent construct.
        id: construct id.
        source: the table whose stream feeds this function (``REPLICATION_SOURCE``). Required.
        stream_arn: that table's stream ARN, or with ``change_source=KINESIS`` the ARN of the Kinesis data
            stream the table streams to (a token for a resource in the same stack is fine). Required.
        key: the table's key attribute names (``REPLICATION_KEY``): the exact key of the source and of every
            target, sort key included. A ``ReplicaTable`` of the same app that this replicator reads or writes
            is compared with it at synth time; a record whose key attributes differ is never written. Required.
        targets: the tables written to (``REPLICATION_TARGETS``); at least one. Required.
        stream_key_arn: customer-managed key of the source table (stream reads need ``kms:Decrypt``).
            Default: none.
        source_key_arn: customer-managed key of the source table, for the item reads of a ``KINESIS`` change
            source (``kms:Decrypt``; a token is fine). Default: ``source.encryption_key_arn``.
        role_name: physical role name; needed when another account's writer role or resource policy must
            name this role. Default: generated by CloudFormation.
        function_name: physical function name (1-64 characters of A-Z a-z 0-9 - _); needed when something
            outside this stack must name the function (a dashboard in another region). Changing it replaces
            the function. Default: generated by CloudFormation (a ``ReplicatedTable`` gives
            ``naming.replicator_function_name``: ``<table>-<region>-replicator``).
        mode: Default: ``ONE_WAY``.
        conflict_attribute: multi-active only. Default: ``"updatedAt"``.
        conflict_strategy: multi-active only. Default: ``TIMESTAMP``.
        ttl_attribute: the tables' TTL attribute, used by the replicator for its delete tombstones
            (``REPLICATION_TTL_ATTRIBUTE``). Default: not written (the replicator's default,
            ``<metadata prefix>expiresAt``).
        options: function and mapping tunables. Default: ``ReplicatorOptions()``.
        change_source: ``DYNAMODB_STREAMS`` or ``KINESIS`` (``ONE_WAY`` only; ``stream_arn`` is then a
            Kinesis stream, read with ``kinesis:`` actions, and the targets need TTL on ``ttl_attribute`` for
            the delete tombstones). Default: ``DYNAMODB_STREAMS``.
        change_retention: with ``KINESIS``, the data stream's retention; delete tombstones outlive it by
            ``defaults.TOMBSTONE_MARGIN``. Default: ``defaults.KINESIS_RETENTION``.
        failure_destination: where the mapping sends what it could not apply. Default:
            ``FailureDestination.s3()`` (a bucket of its own, objects kept 30 days); ``FailureDestination.sqs()``
            for the shard and sequence range only; ``FailureDestination.existing_bucket(bucket)``.
        alarms: the alarms' thresholds and actions. Default: ``ReplicationAlarms()`` (every alarm, no
            actions).

    Attributes:
        failure_bucket: the S3 failure destination, or ``None`` with ``FailureDestination.sqs()``.
        failure_queue: the SQS failure destination, or ``None`` with an S3 one (the default).
        alarms: the alarms by kind (``alarms.ITERATOR_AGE``, ...).
        function_name: the ``function_name`` given, or ``None`` (generated; read ``function.function_name``,
            a token).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: ResolvedTable,
        stream_arn: str,
        key: KeySchema,
        targets: Sequence[ReplicationTarget],
        stream_key_arn: str | None = None,
        source_key_arn: str | None = None,
        role_name: str | None = None,
        function_name: str | None = None,
        mode: ReplicationMode = ReplicationMode.ONE_WAY,
        conflict_attribute: str | None = None,
        conflict_strategy: ConflictStrategy | None = None,
        ttl_attribute: str | None = None,
        options: ReplicatorOptions | None = None,
        change_source: ChangeSource = ChangeSource.DYNAMODB_STREAMS,
        change_retention: Duration | None = None,
        failure_destination: FailureDestination | None = None,
        alarms: ReplicationAlarms | None = None,
    ) -> None:
        super().__init__(scope, id)
        path = self.node.path
        # locals() holds the parameters (and path, which has no hint). The checked targets replace the given
        # ones: a generator is read once, there.
        targets = check_arguments(path, Replicator.__init__, locals())["targets"]
        options = _resolve_options(path, options, mode, change_source)
        require_supported_change_source(path, mode, change_source)
        _check_change_retention(path, change_source, change_retention)
        self._require_stack_of(source)
        _check_targets(path, targets, mode, conflict_attribute, conflict_strategy)
        _check_attribute_names(path, key, mode, conflict_attribute, options.metadata_prefix)
        _require_distinct_regions(path, source, targets, mode)
        failure_destination, alarms = _operations(path, failure_destination, alarms)

        self.change_source = change_source
        self._change_retention = change_retention or defaults.KINESIS_RETENTION
        self.source = source
        self._source_key_arn = source_key_arn if source_key_arn is not None else source.encryption_key_arn
        self.mode = mode
        self.targets = tuple(targets)
        self._options = options
        self.role_name = role_name
        self.function_name = None if function_name is None else require_function_name(path, function_name, "function_name")
        self.key = key
        self._require_keys_of_known_tables()

        self._destination = build_failure_destination(self, failure_destination)
        self.failure_bucket: s3.IBucket | None = self._destination.bucket
        self.failure_queue: sqs.IQueue | None = self._destination.queue
        self.log_group = logs.LogGroup(self, "LogGroup", retention=options.log_retention)
        self.role = self._role(stream_arn, stream_key_arn)
        self.environment = self._environment(key, mode, conflict_attribute, conflict_strategy, ttl_attribute, options)
        self.function = self._function()
        self.event_source_mapping = self._mapping(stream_arn)
        self.alarms = self._alarms(alarms)
        # Last, so that a Replicator refused above (and caught by the caller) is never compared with.
        known_copies(self).add_replicator(self)

    def _alarms(self, config: ReplicationAlarms) -> Mapping[str, cloudwatch.Alarm]:
        """The alarms ``config`` turns on, over this replicator's function, mapping and destination."""
        target = AlarmTarget(self.function, self.event_source_mapping_uuid, self.source.table_name, self.failure_queue)
        return create_alarms(self, config, target)

    def _require_stack_of(self, source: ResolvedTable) -> None:
        """The replicator's stack has a literal environment equal to the source table's (a mapping cannot
        read a stream in another region or account)."""
        path = self.node.path
        stack = Stack.of(self)
        if Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region):
            raise ReplicationConfigError(
                path,
                f"stack {stack.stack_name} has no explicit account and region (environment-agnostic)",
                f'create the stack with env=Environment(account="{source.account}", region="{source.region}")',
            )
        if (stack.account, stack.region) != (source.account, source.region):
            raise ReplicationConfigError(
                path,
                f"the replicator's stack is in {stack.account}/{stack.region} but its source table "
                f"{source.table_name!r} is in {source.account}/{source.region}",
                "create the Replicator in a stack whose env is the source table's account and region "
                "(event source mappings cannot read a stream in another region or account)",
            )

    def _role(self, stream_arn: str, stream_key_arn: str | None) -> iam.Role:
        """The function's own role, written for exactly this function (``permissions.replicator_statements``)."""
        statements = replicator_statements(
            source=self.source,
            mode=self.mode,
            change_source=self.change_source,
            targets=self.targets,
            stream_arn=stream_arn,
            stream_key_arn=stream_key_arn,
            source_key_arn=self._source_key_arn,
            log_group_arn=self.log_group.log_group_arn,
            failure_statements=self._failure_statements(),
        )
        role = iam.Role(
            self,
            "Role",
            role_name=self.role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Replicator of DynamoDB table {self.source.table_name} ({self.source.region})",
            inline_policies={"Replication": iam.PolicyDocument(statements=statements)},
        )
        acknowledge_replicator_role(role, statements)
        return role

    def _failure_statements(self) -> list[iam.PolicyStatement]:
        """Exactly what Lambda needs to deliver failure records to this replicator's destination."""
        if self.failure_bucket is not None:
            objects = self.failure_bucket.arn_for_objects(f"{FAILURE_RECORD_KEY_PREFIX}*")
            return failure_bucket_statements(self.failure_bucket.bucket_arn, objects)
        assert self.failure_queue is not None
        return failure_queue_statements(self.failure_queue.queue_arn)

    def _function(self) -> lambda_.Function:
        """The replicator function: the ``lambda_src`` asset, ``self.environment``, its own role and log group."""
        options = self._options
        function = lambda_.Function(
            self,
            "Function",
            description=f"Replicates DynamoDB table {self.source.table_name} ({self.source.region}) to "
            f"{len(self.targets)} target(s)",
            runtime=options.runtime,
            architecture=defaults.ARCHITECTURE,
            handler=defaults.HANDLER,
            code=lambda_.Code.from_asset(
                str(lambda_source_dir()), exclude=["**/__pycache__", "**/*.pyc"]
            ),
            function_name=self.function_name,
            memory_size=options.memory_size,
            timeout=options.timeout,
            role=self.role,
            log_group=self.log_group,
            environment=self.environment,
        )
        if options.runtime.name == defaults.RUNTIME.name:
            acknowledge_nag(
                function,
                "AwsSolutions-L1",
                f"{defaults.RUNTIME.name} is the runtime the replicator is tested on; ReplicatorOptions.runtime "
                "selects another.",
            )
        return function

    def _mapping(self, stream_arn: str) -> lambda_.EventSourceMapping:
        """The event source mapping from ``stream_arn`` to the function, failures to the failure destination,
        with its own ``EventCount`` metrics on (the alarms and the dashboard read them)."""
        options = self._options
        return lambda_.EventSourceMapping(
            self,
            "StreamMapping",
            target=self.function,
            event_source_arn=stream_arn,
            starting_position=options.starting_position,
            batch_size=options.batch_size,
            max_batching_window=options.max_batching_window,
            retry_attempts=options.retry_attempts,
            max_record_age=options.max_record_age,
            bisect_batch_on_error=options.bisect_batch_on_error,
            report_batch_item_failures=options.report_batch_item_failures,
            parallelization_factor=options.parallelization_factor,
            enabled=self.enabled,
            on_failure=self._destination.on_failure(),
            metrics_config=lambda_.MetricsConfig(metrics=list(defaults.MAPPING_METRICS)),
        )

    @property
    def options(self) -> ReplicatorOptions:
        """The options in effect (after backlog-dependent defaults were applied)."""
        return self._options

    @property
    def copies(self) -> tuple[ResolvedTable, ...]:
        """The tables this replicator reads (its source) and writes (its targets)."""
        return (self.source, *(t.table for t in self.targets))

    def _require_keys_of_known_tables(self) -> None:
        """Compare ``key`` with the key of each ``ReplicaTable`` of this app that it reads or writes (a
        ``ReplicaTable`` created later compares itself with this replicator)."""
        known = known_copies(self)
        for copy in self.copies:
            for table_key in known.tables.get(_location_of(copy), ()):
                require_matching_key(self.node.path, self, copy.table_name, copy.account, copy.region, table_key)

    @property
    def enabled(self) -> bool:
        """Whether the event source mapping is created enabled."""
        return self._options.enabled if self._options.enabled is not None else defaults.ENABLED

    @property
    def event_source_mapping_uuid(self) -> str:
        """The mapping's UUID (a token): ``cdk-replication migrate --event-source-mapping-uuid`` and
        ``aws lambda update-event-source-mapping --uuid`` take it."""
        return self.event_source_mapping.event_source_mapping_id

    @property
    def event_source_mapping_arn(self) -> str:
        """The mapping's ARN (a token)."""
        return self.event_source_mapping.event_source_mapping_arn

    def _environment(
        self,
        key: KeySchema,
        mode: ReplicationMode,
        conflict_attribute: str | None,
        conflict_strategy: ConflictStrategy | None,
        ttl_attribute: str | None,
        options: ReplicatorOptions,
    ) -> dict[str, str]:
        env = {
            contract.MODE: mode.value,
            contract.SOURCE: _json(self.source.to_env()),
            contract.TARGETS: _json([t.to_env() for t in self.targets]),
            contract.KEY: _json(key.to_env()),
            contract.METADATA_PREFIX: options.metadata_prefix,
            contract.MAX_CONCURRENCY: str(options.max_concurrency),
            contract.LOG_LEVEL: options.log_level,
            contract.POWERTOOLS_LOG_LEVEL: options.log_level,
        }
        if self.change_source == ChangeSource.KINESIS:
            env[contract.CHANGE_SOURCE] = self.change_source.value
            retention = int(self._change_retention.to_seconds())
            env[contract.TOMBSTONE_TTL_SECONDS] = str(contract.kinesis_tombstone_ttl_seconds(retention))
        if mode == ReplicationMode.MULTI_ACTIVE:
            env[contract.CONFLICT_ATTRIBUTE] = conflict_attribute or contract.DEFAULT_CONFLICT_ATTRIBUTE
            env[contract.CONFLICT_STRATEGY] = (conflict_strategy or ConflictStrategy.TIMESTAMP).value
            env[contract.TOMBSTONE_TTL_SECONDS] = str(tombstone_ttl_seconds(options.max_record_age))
        if ttl_attribute is not None:
            env[contract.TTL_ATTRIBUTE] = ttl_attribute
        # The replicator refuses this TTL attribute at every cold start (config.load_config, the same rule and
        # the same defaults), so refuse it before it is deployed.
        tombstone_expiry = env.get(contract.TTL_ATTRIBUTE) or contract.default_ttl_attribute(options.metadata_prefix)
        key_names = [n for n in (key.partition_key, key.sort_key) if n is not None]
        conflict = env.get(contract.CONFLICT_ATTRIBUTE, contract.DEFAULT_CONFLICT_ATTRIBUTE)
        problem = contract.ttl_attribute_problem(tombstone_expiry, key_names, conflict)
        if problem is not None:
            raise ReplicationConfigError(
                self.node.path,
                f"ttl_attribute {problem}; the replicator writes each tombstone's expiry there",
                "use a TTL attribute of its own (time_to_live_attribute), or leave it unset for "
                f"{contract.default_ttl_attribute(options.metadata_prefix)!r}",
            )
        for name, value in env.items():
            if Token.is_unresolved(value):
                raise ReplicationConfigError(
                    self.node.path,
                    f"environment variable {name} would contain a token ({value!r})",
                    "pass literal table names, regions and accounts",
                )
        size = sum(len(k) + len(v) for k, v in env.items())
        if size > _MAX_ENV_BYTES:
            raise ReplicationConfigError(
                self.node.path,
                f"the replicator's environment is {size} bytes, above Lambda's 4 KB limit",
                "use shorter table names or fewer targets per replicator",
            )
        return env


def _check_targets(
    path: str,
    targets: Sequence[ReplicationTarget],
    mode: ReplicationMode,
    conflict_attribute: str | None,
    conflict_strategy: ConflictStrategy | None,
) -> None:
    """At least one target; conflict settings only in multi-active mode."""
    if not targets:
        raise ReplicationConfigError(path, "targets is empty", "give at least one ReplicationTarget")
    require_no_conflict_settings_one_way(path, mode, conflict_attribute, conflict_strategy)


def require_no_conflict_settings_one_way(
    path: str, mode: ReplicationMode, conflict_attribute: str | None, conflict_strategy: ConflictStrategy | None
) -> None:
    """Refuse conflict settings in ``ONE_WAY`` mode (nothing to resolve there; a set value hints at a mistake)."""
    if mode == ReplicationMode.ONE_WAY and (conflict_attribute is not None or conflict_strategy is not None):
        raise ReplicationConfigError(
            path,
            f"conflict_attribute={conflict_attribute!r} / conflict_strategy={conflict_strategy!r} are set in "
            "ONE_WAY mode, where there are no conflicts to resolve",
            "drop them, or use mode=ReplicationMode.MULTI_ACTIVE",
        )


def _require_distinct_regions(
    path: str, source: ResolvedTable, targets: Sequence[ReplicationTarget], mode: ReplicationMode
) -> None:
    """Multi-active: the origin region breaks ties, so every copy has its own region."""
    if mode == ReplicationMode.MULTI_ACTIVE:
        regions = [source.region, *(t.table.region for t in targets)]
        if len(set(regions)) != len(regions):
            raise ReplicationConfigError(
                path,
                f"MULTI_ACTIVE copies share a region ({', '.join(sorted(regions))}); the origin region breaks "
                "ties between equal conflict values, so it must identify one copy",
                "put every multi-active copy in its own region",
            )


def require_supported_change_source(path: str, mode: ReplicationMode, change_source: ChangeSource) -> None:
    """Refuse ``KINESIS`` for ``MULTI_ACTIVE``: multi-active decides each conflict with the record's old image,
    which is only meaningful in write order, and Kinesis may reorder one item's changes."""
    if change_source == ChangeSource.KINESIS and mode != ReplicationMode.ONE_WAY:
        raise ReplicationConfigError(
            path,
            f"change_source KINESIS with mode {mode.value}: multi-active decides each conflict with the record's "
            "old image, which is only meaningful in write order, and Kinesis may reorder changes",
            "use change_source=ChangeSource.DYNAMODB_STREAMS for MULTI_ACTIVE",
        )


def require_matching_key(
    path: str, replicator: Replicator, table_name: str, account: str, region: str, table_key: KeySchema
) -> None:
    """Raise ``ReplicationConfigError`` naming ``path`` if ``replicator`` reads or writes the table ``table_name``
    in ``account``/``region`` with another key than the table's own ``table_key``.

    The replicator keys every item by its configured key: with a key attribute missing it would merge distinct
    items into one, and it refuses every record whose key attributes differ (issue 10, defect 7). Only a
    table created in the same app can be compared; an existing table's key cannot be read at synth time.
    """
    if (table_name, region, account) not in {_location_of(t) for t in replicator.copies}:
        return
    if table_key == replicator.key:
        return
    raise ReplicationConfigError(
        path,
        f"Replicator {replicator.node.path} has key {_key_text(replicator.key)}, but table {table_name!r} "
        f"({account}/{region}) that it replicates is keyed {_key_text(table_key)}; the replicator keys items by "
        "its configured key, so it would merge distinct items or refuse every record",
        "give the Replicator key=KeySchema(...) with the table's exact partition and sort key names",
    )


#: A table's identity for the key comparison: (table name, region, account).
_Location = tuple[str, str, str]


def _location_of(table: ResolvedTable) -> _Location:
    return (table.table_name, table.region, table.account)


@dataclass
class KnownCopies:
    """The fully built tables and replicators of one construct tree, indexed by the table location they name,
    so that each new one is compared only with its counterparts. (Scanning the whole tree from every new
    construct made building an app quadratic in its size: 120 ``ReplicatedTable``s of 4 locations took 127 s.)

    Only constructs that finished their ``__init__`` are added: one refused half-way (and caught by the caller)
    stays in the tree without the attributes a comparison reads.

    Attributes:
        tables: location -> the keys of the ``ReplicaTable``s created there (several only in different
            stages of one app).
        replicators: location -> the ``Replicator``s that read or write that table.
    """

    tables: dict[_Location, list[KeySchema]] = field(default_factory=dict)
    replicators: dict[_Location, list[Replicator]] = field(default_factory=dict)

    def add_table(self, table_name: str, account: str, region: str, key: KeySchema) -> None:
        """Record a ``ReplicaTable`` (tokens for the account or region of an environment-agnostic stack never
        match a replicator's literal location, so such a table is never compared)."""
        self.tables.setdefault((table_name, region, account), []).append(key)

    def add_replicator(self, replicator: Replicator) -> None:
        """Record a ``Replicator`` under each table it reads or writes."""
        for copy in replicator.copies:
            self.replicators.setdefault(_location_of(copy), []).append(replicator)


#: One ``KnownCopies`` per construct tree, keyed by the tree's root (an ``App``); weak, so that a test's or
#: a script's discarded app takes its entry with it.
_KNOWN_COPIES: "weakref.WeakKeyDictionary[IConstruct, KnownCopies]" = weakref.WeakKeyDictionary()


def known_copies(scope: IConstruct) -> KnownCopies:
    """The ``KnownCopies`` of the construct tree ``scope`` belongs to (created on first use)."""
    root = scope.node.root
    known = _KNOWN_COPIES.get(root)
    if known is None:
        known = _KNOWN_COPIES[root] = KnownCopies()
    return known


def _key_text(key: KeySchema) -> str:
    return f"({key.partition_key}, {key.sort_key})" if key.sort_key is not None else f"({key.partition_key})"


def tombstone_ttl_seconds(max_record_age: Duration | None) -> int:
    """How long a multi-active delete tombstone must live, in seconds, for a mapping whose maximum record age
    is ``max_record_age`` (``None``: unlimited). The arithmetic is the contract's
    (``contract.multi_active_tombstone_ttl_seconds``)."""
    age = None if max_record_age is None else int(max_record_age.to_seconds())
    return contract.multi_active_tombstone_ttl_seconds(age)


def _check_attribute_names(
    path: str, key: KeySchema, mode: ReplicationMode, conflict_attribute: str | None, prefix: str
) -> None:
    """Reject names the replicator would refuse at cold start, by the contract's own rules."""
    key_names = [n for n in (key.partition_key, key.sort_key) if n is not None]
    problem = contract.metadata_prefix_problem(prefix, key_names)
    if problem is not None:
        raise ReplicationConfigError(
            path,
            f"metadata_prefix {problem}; the replicator would treat the key as its own metadata",
            "choose a metadata_prefix no attribute of yours starts with",
        )
    if mode == ReplicationMode.MULTI_ACTIVE:
        attribute = conflict_attribute or defaults.CONFLICT_ATTRIBUTE
        problem = contract.conflict_attribute_problem(attribute, prefix, key_names)
        if problem is not None:
            raise ReplicationConfigError(
                path,
                f"conflict_attribute {problem}",
                "use an application attribute that holds the write's timestamp or version",
            )


def _json(value: object) -> str:
    """Compact JSON with sorted keys, so templates are stable across runs."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
