"""The CloudWatch dashboard of a ``ReplicatedTable``: one dashboard, in the source's (first writer's) stack,
showing every writer's replicator in its own region (widgets and metrics carry ``region=``/``account=``).

Hand-written widgets rather than cdk-monitoring-constructs (docs/operations.md, "Why not
cdk-monitoring-constructs"): the replicator's own EMF metrics need custom widgets there too, its Lambda and
event source mapping facades resolve a function in the dashboard's own stack, and a replicator in another
region is referenced here by metric names and dimensions only, never by a token of its stack (CloudFormation
cannot reference another region's stack).

A replicator in another stack is reached through literal values: the ``SourceTable`` dimension of its EMF
metrics, its function by its deterministic physical name (``naming.replicator_function_name``), its alarms by
their deterministic names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from ._lambda.replicator import telemetry
from .alarms import DELIVERY_FAILURES, DROPPED, LAMBDA_NAMESPACE, ON_FAILURE_DELIVERED, SOURCE_TABLE_DIMENSION, alarm_name, mapping_metric
from .errors import ReplicationConfigError
from .naming import partition_for_region
from .replicator import Replicator

#: Dashboard grid width (CloudWatch: 24 units); each graph takes a third of a row.
_WIDTH = 8
_HEIGHT = 6
_PERIOD = Duration.minutes(1)


@dataclass(frozen=True)
class _Writer:
    """One writer's replicator as the dashboard sees it."""

    replicator: Replicator
    local: bool

    @property
    def region(self) -> str:
        return self.replicator.source.region

    @property
    def account(self) -> str:
        return self.replicator.source.account

    @property
    def table(self) -> str:
        return self.replicator.source.table_name

    @property
    def label(self) -> str:
        return f"{self.table} ({self.region})"

    def emf(self, name: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=telemetry.NAMESPACE,
            metric_name=name,
            dimensions_map={SOURCE_TABLE_DIMENSION: self.table},
            statistic=statistic,
            period=_PERIOD,
            region=self.region,
            account=self.account,
            label=label or self.label,
        )

    def function_metric(self, name: str, statistic: str, label: str) -> cloudwatch.IMetric:
        """One of the replicator function's AWS/Lambda metrics: through the function in this stack; in
        another stack by its literal physical name (``Replicator(function_name=...)``), in its region."""
        if self.local:
            return self.replicator.function.metric(name, statistic=statistic, period=_PERIOD, label=label)
        if self.replicator.function_name is None:
            raise ReplicationConfigError(
                self.replicator.node.path,
                "the dashboard shows a replicator of another stack whose function has a generated name",
                "give that Replicator function_name= (ReplicatedTable does)",
            )
        return cloudwatch.Metric(
            namespace=LAMBDA_NAMESPACE,
            metric_name=name,
            dimensions_map={"FunctionName": self.replicator.function_name},
            statistic=statistic,
            period=_PERIOD,
            region=self.region,
            account=self.account,
            label=label,
        )

    def search(self, expression: str, label: str) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression=expression, label=label, period=_PERIOD, search_region=self.region, search_account=self.account
        )


def create_dashboard(scope: Construct, name: str, replicators: Sequence[Replicator]) -> cloudwatch.Dashboard:
    """The dashboard named ``name`` in ``scope``'s stack over ``replicators`` (the first is the source's)."""
    stack = Stack.of(scope)
    writers = [_Writer(r, Stack.of(r) is stack) for r in replicators]
    dashboard = cloudwatch.Dashboard(scope, "Dashboard", dashboard_name=name, default_interval=Duration.hours(3))
    dashboard.add_widgets(
        cloudwatch.TextWidget(markdown=_header(writers), width=24, height=3),
    )
    dashboard.add_widgets(_throughput(writers), _lag(writers), _iterator_age(writers))
    dashboard.add_widgets(_failures(writers), _failures_by_cause(writers), _destination(writers))
    dashboard.add_widgets(_conflicts(writers), _tombstones(writers), _alarm_status(scope, writers))
    return dashboard


def _header(writers: Sequence[_Writer]) -> str:
    lines = ["# Replication", "", "| replicator | region | account |", "| --- | --- | --- |"]
    lines += [f"| {w.table} | {w.region} | {w.account} |" for w in writers]
    lines += ["", "What each alarm means and what to do: docs/operations.md (cdk-replication)."]
    return "\n".join(lines)


def _graph(title: str, metrics: Sequence[cloudwatch.IMetric], **props: object) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=_WIDTH, height=_HEIGHT, **props)  # type: ignore[arg-type]


def _throughput(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """Records applied per second: the per-minute Sum divided by the period."""
    metrics = [
        cloudwatch.MathExpression(
            expression=f"applied{index} / PERIOD(applied{index})",
            using_metrics={f"applied{index}": w.emf(telemetry.RECORDS_APPLIED, "Sum")},
            label=w.label,
            period=_PERIOD,
            # Metric math runs in one region (GetMetricData is regional): the expression goes where its metric is.
            search_region=w.region,
            search_account=w.account,
        )
        for index, w in enumerate(writers)
    ]
    return _graph("Replicated records/s", metrics)


def _lag(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    metrics = []
    for w in writers:
        metrics.append(w.emf(telemetry.REPLICATION_LAG, "p50", f"{w.label} p50"))
        metrics.append(w.emf(telemetry.REPLICATION_LAG, "p99", f"{w.label} p99"))
    return _graph("Replication lag (ms)", metrics)


def _iterator_age(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """IteratorAge per replicator: the age of the newest record each mapping read."""
    return _graph(
        "Iterator age (ms)", [w.function_metric("IteratorAge", "Maximum", w.label) for w in writers]
    )


def _failures(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    return _graph("Records failed (retried by Lambda)", [w.emf(telemetry.RECORDS_FAILED, "Sum") for w in writers])


def _by_dimension(title: str, writers: Sequence[_Writer], metric: str, dimension: str) -> cloudwatch.GraphWidget:
    """``metric`` summed per value of ``dimension``, one line per (replicator, value) found by a SEARCH."""
    metrics = [
        w.search(
            f"SEARCH('{{{telemetry.NAMESPACE},{SOURCE_TABLE_DIMENSION},{dimension}}} "
            f"MetricName=\"{metric}\" {SOURCE_TABLE_DIMENSION}=\"{w.table}\"', 'Sum', 60)",
            f"{w.region} ",
        )
        for w in writers
    ]
    return _graph(title, metrics)


def _failures_by_cause(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """WriteFailures by ErrorCode, one line per (replicator, error code) found."""
    return _by_dimension("Write failures by cause (ErrorCode)", writers, telemetry.WRITE_FAILURES, "ErrorCode")


def _destination(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """Records sent to the failure destination and dropped, from the mapping's own metrics (this stack's
    mapping only: another stack's mapping UUID is a token of that stack, known to no other), and every
    writer's failed sends to its destination (a function metric, named literally)."""
    metrics: list[cloudwatch.IMetric] = []
    for w in writers:
        if w.local:
            uuid = w.replicator.event_source_mapping_uuid
            metrics.append(mapping_metric(ON_FAILURE_DELIVERED, uuid, period=_PERIOD, label=f"{w.label} to destination"))
            metrics.append(mapping_metric(DROPPED, uuid, period=_PERIOD, label=f"{w.label} dropped"))
        metrics.append(w.function_metric(DELIVERY_FAILURES, "Sum", f"{w.label} delivery failed"))
    return _graph("Failure destination deliveries / delivery failures / dropped", metrics)


def _conflicts(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """Conflicts by Kind (multi-active, and the change-time ordering of a Kinesis source)."""
    return _by_dimension("Conflicts by kind", writers, telemetry.CONFLICTS, "Kind")


def _tombstones(writers: Sequence[_Writer]) -> cloudwatch.GraphWidget:
    """Delete tombstones written (multi-active, and the replicas of a Kinesis source); they expire by TTL."""
    return _graph("Tombstones written", [w.emf(telemetry.TOMBSTONES_WRITTEN, "Sum") for w in writers])


def _alarm_status(scope: Construct, writers: Sequence[_Writer]) -> cloudwatch.AlarmStatusWidget:
    """Every replicator's alarms; another stack's by ARN, built from their deterministic names."""
    alarms: list[cloudwatch.IAlarm] = []
    for index, w in enumerate(writers):
        for kind, alarm in w.replicator.alarms.items():
            if w.local:
                alarms.append(alarm)
                continue
            arn = (
                f"arn:{partition_for_region(w.region)}:cloudwatch:{w.region}:{w.account}:alarm:"
                f"{alarm_name(w.replicator, kind)}"
            )
            alarms.append(cloudwatch.Alarm.from_alarm_arn(scope, f"Alarm{index}{kind}", arn))
    return cloudwatch.AlarmStatusWidget(alarms=alarms, title="Alarms", width=_WIDTH, height=_HEIGHT)
