"""CloudWatch alarms on every replicator (``ReplicationAlarms``), one per way a replicator can go wrong.

Every alarm exists by default, even without actions, so the console and the dashboard show its state; the
actions given (``ReplicationAlarms(actions=[cloudwatch_actions.SnsAction(topic)])``) are added to each. Each
alarm is tuned by its threshold, or turned off with ``None`` (``False`` for ``not_polling``). What each one
means and what to do first: docs/operations.md.

Missing data is "not breaching" for every alarm whose metric is only emitted when something happens (an idle
stream invokes nothing, so there is no IteratorAge, no Errors, no RecordsFailed). That would hide a replicator
that stopped reading altogether, so one alarm reads the other way: ``not_polling`` watches the mapping's
``PolledEventCount``, which Lambda emits (0 on an empty poll) every time it polls the stream, and treats its
absence as breaching: a mapping that is disabled, lost its permission to read the stream, or whose function is
gone emits nothing.

The metric names of the replicator's own EMF metrics are the replicator's contract (``telemetry``), imported
from the Lambda package, not copied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import defaults
from ._lambda.replicator import telemetry
from .errors import ReplicationConfigError
from .props import implements

#: Namespace of Lambda's own function and event source mapping metrics.
LAMBDA_NAMESPACE = "AWS/Lambda"
#: The dimension of Lambda's event source mapping metrics (``MetricsConfig`` ``EventCount``).
MAPPING_DIMENSION = "EventSourceMappingUUID"
#: The dimension of every replicator EMF metric (``telemetry.InvocationMetrics``).
SOURCE_TABLE_DIMENSION = "SourceTable"
#: Event source mapping metrics of the ``EventCount`` group (AWS Lambda developer guide, "Event source mapping
#: metrics"): records sent to the on-failure destination, records dropped (past MaximumRecordAge or
#: MaximumRetryAttempts and not sent to a destination), and records read per poll (0 on an empty poll).
ON_FAILURE_DELIVERED = "OnFailureDestinationDeliveredEventCount"
DROPPED = "DroppedEventCount"
POLLED = "PolledEventCount"
#: A function metric (``FunctionName``): attempts to send to a destination that failed. AWS documents it for
#: asynchronous invocation and for the destinations of stream event source mappings (DynamoDB, Kinesis).
DELIVERY_FAILURES = "DestinationDeliveryFailures"

#: Alarm kinds, in the order they are created; each is the suffix of the alarm's name and construct id.
ITERATOR_AGE = "IteratorAge"
FAILED_RECORDS = "FailedRecords"
FUNCTION_ERRORS = "FunctionErrors"
THROTTLES = "Throttles"
FAILURE_DESTINATION = "FailureDestination"
DROPPED_RECORDS = "DroppedRecords"
DESTINATION_DELIVERY_FAILURES = "DestinationDeliveryFailures"
REPLICATION_LAG = "ReplicationLagP99"
NOT_POLLING = "NotPolling"


@dataclass(frozen=True)
class ReplicationAlarms:
    """The alarms of a replicator. Every alarm is on by default; a threshold of ``None`` turns one off.

    Attributes:
        actions: alarm actions added to every alarm (``cloudwatch.IAlarmAction``, e.g.
            ``aws_cloudwatch_actions.SnsAction(topic)``), for the ALARM and the OK transition. Default: none
            (the alarms still exist and show their state).
        iterator_age: alarm when the age of the newest record read (AWS/Lambda ``IteratorAge``, Maximum) stays
            at or above this for 5 consecutive minutes. Default: 5 minutes: healthy replication is seconds
            behind, and the default maximum record age is one hour, so this leaves most of the hour to act
            before records start going to the failure destination.
        failed_records: alarm when the replicator reports at least this many records it could not apply
            (``RecordsFailed``, Sum per 5 minutes) in 2 of 3 periods. Default: 1: Lambda retries them, but a
            failure that lasts 10 minutes is not transient.
        function_errors: function errors (AWS/Lambda ``Errors``, Sum per 5 minutes) at or above this in one
            period. Default: 1: the replicator reports record failures in its answer and never raises for
            them, so an error is a crash, a timeout or a configuration the replicator refused.
        throttles: function throttles (AWS/Lambda ``Throttles``, Sum per 5 minutes) at or above this in 3
            consecutive periods. Default: 1: an occasional throttle is retried by Lambda; throttling for 15
            minutes means the account or the function is out of concurrency and replication falls behind.
        failure_destination: records delivered to the failure destination at or above this in 5 minutes.
            S3: the mapping's ``OnFailureDestinationDeliveredEventCount`` (Sum); SQS: the queue's
            ``ApproximateNumberOfMessagesVisible`` (Maximum), which stays in ALARM until the queue is redriven.
            Default: 1: every record there is a change no replica has; redrive it.
        dropped_records: records the mapping dropped (``DroppedEventCount``, Sum per 5 minutes) at or above
            this. AWS defines it as records past ``max_record_age`` or the retries that were not sent to a
            destination. Default: 1: such a record is in no destination, so redrive cannot see it and only
            ``verify --repair`` finds the keys.
        destination_delivery_failures: failed attempts to send a failure record to the failure destination
            (AWS/Lambda ``DestinationDeliveryFailures``, ``FunctionName``, Sum per 5 minutes) at or above this.
            Default: 1: the bucket or queue refused Lambda's write (deleted, its policy or key refuses the
            role), so the records of that batch are in no destination.
        replication_lag_p99: alarm when the p99 of the replicator's ``ReplicationLagMs`` (time from the change to
            its replication, per batch) stays at or above this for 3 consecutive 5-minute periods. Default: 1
            minute: replication across regions normally takes about a second; a minute for 15 minutes is a
            replica the application can see is stale.
        not_polling: alarm when the mapping emits no ``PolledEventCount`` for 15 minutes (missing data is
            breaching): the mapping is disabled, cannot read the stream or cannot invoke the function. Default:
            ``True``. Expect it in ALARM while a mapping is disabled on purpose (a migration's initial load).
    """

    actions: Sequence[cloudwatch.IAlarmAction] = ()
    iterator_age: Duration | None = defaults.ALARM_ITERATOR_AGE
    failed_records: int | None = defaults.ALARM_FAILED_RECORDS
    function_errors: int | None = defaults.ALARM_FUNCTION_ERRORS
    throttles: int | None = defaults.ALARM_THROTTLES
    failure_destination: int | None = defaults.ALARM_FAILURE_DESTINATION
    dropped_records: int | None = defaults.ALARM_DROPPED_RECORDS
    destination_delivery_failures: int | None = defaults.ALARM_DESTINATION_DELIVERY_FAILURES
    replication_lag_p99: Duration | None = defaults.ALARM_REPLICATION_LAG_P99
    not_polling: bool = True

    def validate(self, path: str) -> None:
        """Raise ``ReplicationConfigError`` naming ``path`` for an action or a threshold CloudWatch would not
        take, or that could never fire."""
        for index, action in enumerate(self.actions):
            if not implements(action, cloudwatch.IAlarmAction):
                raise ReplicationConfigError(
                    path,
                    f"alarms.actions[{index}] is {type(action).__name__} ({action!r:.60}), not a "
                    "cloudwatch.IAlarmAction",
                    "pass alarm actions, e.g. aws_cloudwatch_actions.SnsAction(topic) (from aws_cdk import "
                    "aws_cloudwatch_actions)",
                )
        counts = (
            "failed_records", "function_errors", "throttles", "failure_destination", "dropped_records",
            "destination_delivery_failures",
        )
        for name in counts:
            _require_count(path, name, getattr(self, name))
        for name, minimum in (("iterator_age", 60), ("replication_lag_p99", 1)):
            _require_duration(path, name, getattr(self, name), minimum)


def _require_count(path: str, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or Token.is_unresolved(value) or value < 1:
        raise ReplicationConfigError(
            path,
            f"alarms.{name} is {value!r}; it counts records or errors, so below 1 it would be in ALARM always",
            f"use a whole number >= 1, or {name}=None to turn that alarm off",
        )


def _require_duration(path: str, name: str, value: object, minimum_seconds: int) -> None:
    if value is None:
        return
    fix = f"pass whole seconds, e.g. Duration.minutes(5), or {name}=None to turn that alarm off"
    if not isinstance(value, Duration) or Token.is_unresolved(value.to_milliseconds(integral=False)):
        raise ReplicationConfigError(path, f"alarms.{name} is {value!r}, not a literal Duration", fix)
    milliseconds = value.to_milliseconds(integral=False)
    if milliseconds % 1000 or milliseconds < minimum_seconds * 1000:
        raise ReplicationConfigError(
            path,
            f"alarms.{name} is {describe_duration(value)}, not a literal Duration of at least {minimum_seconds} s "
            "in whole seconds",
            fix,
        )


def describe_duration(value: Duration) -> str:
    """A literal ``value`` as a person reads it, with its exact milliseconds: ``to_human_string`` drops the
    sub-second part of longer durations (90.5 s reads "1 minute 30 seconds"), and ``to_seconds`` raises a raw
    jsii error for a fraction of a second, so validation must not call it first."""
    milliseconds = value.to_milliseconds(integral=False)
    exact = int(milliseconds) if milliseconds == int(milliseconds) else milliseconds
    return f"{value.to_human_string()} ({exact} ms)"


@dataclass(frozen=True)
class AlarmTarget:
    """What the alarms of one replicator watch.

    Attributes:
        function: the replicator function (FunctionName dimension).
        mapping_uuid: its event source mapping's UUID (a token is fine).
        source_table: the ``SourceTable`` dimension of the replicator's EMF metrics.
        failure_queue: the SQS failure destination, or ``None`` with an S3 one.
    """

    function: lambda_.IFunction
    mapping_uuid: str
    source_table: str
    failure_queue: sqs.IQueue | None


@dataclass(frozen=True)
class _Spec:
    metric: cloudwatch.IMetric
    threshold: float
    evaluation_periods: int
    datapoints: int
    description: str
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING


def mapping_metric(name: str, mapping_uuid: str, statistic: str = "Sum", **props: object) -> cloudwatch.Metric:
    """One of the event source mapping's own metrics (``EventCount`` group), per 5 minutes by default."""
    return cloudwatch.Metric(
        namespace=LAMBDA_NAMESPACE,
        metric_name=name,
        dimensions_map={MAPPING_DIMENSION: mapping_uuid},
        statistic=statistic,
        period=props.pop("period", Duration.minutes(5)),  # type: ignore[arg-type]
        **props,  # type: ignore[arg-type]
    )


def replicator_metric(name: str, source_table: str, statistic: str = "Sum", **props: object) -> cloudwatch.Metric:
    """One of the replicator's EMF metrics (namespace ``telemetry.NAMESPACE``, dimension ``SourceTable``)."""
    return cloudwatch.Metric(
        namespace=telemetry.NAMESPACE,
        metric_name=name,
        dimensions_map={SOURCE_TABLE_DIMENSION: source_table},
        statistic=statistic,
        period=props.pop("period", Duration.minutes(5)),  # type: ignore[arg-type]
        **props,  # type: ignore[arg-type]
    )


def _specs(config: ReplicationAlarms, target: AlarmTarget) -> dict[str, _Spec]:
    """The alarms ``config`` turns on, by kind."""
    five = Duration.minutes(5)
    specs: dict[str, _Spec | None] = {
        ITERATOR_AGE: None if config.iterator_age is None else _Spec(
            target.function.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(1)),
            config.iterator_age.to_milliseconds(), 5, 5,
            "The replicator is reading its stream behind the newest change; records approach max_record_age.",
        ),
        FAILED_RECORDS: None if config.failed_records is None else _Spec(
            replicator_metric(telemetry.RECORDS_FAILED, target.source_table), config.failed_records, 3, 2,
            "The replicator keeps failing to apply records (see the WriteFailures ErrorCode on the dashboard).",
        ),
        FUNCTION_ERRORS: None if config.function_errors is None else _Spec(
            target.function.metric_errors(period=five, statistic="Sum"), config.function_errors, 1, 1,
            "The replicator function crashed, timed out or refused its configuration.",
        ),
        THROTTLES: None if config.throttles is None else _Spec(
            target.function.metric_throttles(period=five, statistic="Sum"), config.throttles, 3, 3,
            "The replicator function is throttled (out of concurrency); replication falls behind.",
        ),
        FAILURE_DESTINATION: None if config.failure_destination is None else _Spec(
            _destination_metric(target), config.failure_destination, 1, 1,
            "Records went to the failure destination: no replica has them. Fix the cause, then redrive.",
        ),
        DROPPED_RECORDS: None if config.dropped_records is None else _Spec(
            mapping_metric(DROPPED, target.mapping_uuid), config.dropped_records, 1, 1,
            "The mapping dropped records (past max age or retries) without sending them to a destination: "
            "run verify --repair.",
        ),
        DESTINATION_DELIVERY_FAILURES: None if config.destination_delivery_failures is None else _Spec(
            target.function.metric(DELIVERY_FAILURES, statistic="Sum", period=five),
            config.destination_delivery_failures, 1, 1,
            "Lambda could not write a failed batch to the failure destination (deleted, or its policy or key "
            "refuses the role): fix the destination, then run verify --repair.",
        ),
        REPLICATION_LAG: None if config.replication_lag_p99 is None else _Spec(
            replicator_metric(telemetry.REPLICATION_LAG, target.source_table, statistic="p99"),
            config.replication_lag_p99.to_milliseconds(), 3, 3,
            "Changes reach the replicas late (p99 of the replication lag).",
        ),
        NOT_POLLING: None if not config.not_polling else _Spec(
            mapping_metric(POLLED, target.mapping_uuid, statistic="SampleCount"), 1, 3, 3,
            "The mapping has not polled its stream for 15 minutes: disabled, no permission, or no function.",
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
        ),
    }
    return {kind: spec for kind, spec in specs.items() if spec is not None}


def _destination_metric(target: AlarmTarget) -> cloudwatch.IMetric:
    if target.failure_queue is not None:
        return target.failure_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=Duration.minutes(5)
        )
    return mapping_metric(ON_FAILURE_DELIVERED, target.mapping_uuid)


def alarm_name(scope: Construct, kind: str) -> str:
    """The alarm's name: ``<stack name>-<replicator's path in its stack>-<kind>`` (path parts joined by ``-``,
    e.g. ``Employee-us-west-2-Replicator-IteratorAge``), stable and unique in its account and region."""
    stack = Stack.of(scope)
    inner = scope.node.path[len(stack.node.path) + 1 :].replace("/", "-")
    return f"{stack.stack_name}-{inner}-{kind}"


def create_alarms(scope: Construct, config: ReplicationAlarms, target: AlarmTarget) -> Mapping[str, cloudwatch.Alarm]:
    """The alarms ``config`` turns on, under ``scope`` (the replicator), by kind; ids ``<kind>Alarm``."""
    alarms: dict[str, cloudwatch.Alarm] = {}
    for kind, spec in _specs(config, target).items():
        alarm = cloudwatch.Alarm(
            scope,
            f"{kind}Alarm",
            alarm_name=alarm_name(scope, kind),
            alarm_description=f"{spec.description} What to do: cdk-replication docs/operations.md, alarm {kind}.",
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints,
            comparison_operator=spec.comparison,
            treat_missing_data=spec.missing,
        )
        for action in config.actions:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        alarms[kind] = alarm
    return alarms

