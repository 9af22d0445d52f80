"""Adversarial review of issue 12's operations surface (branch rev-ops). Each test states a defect found in
review; they fail on main as merged (39f77ac)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from construct_helpers import Synthesized, only_resource
from test_construct_props import build

from cdk_replication import FailureDestination, ReplicationAlarms, ReplicationConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "props",
    [
        {"alarms": ReplicationAlarms(replication_lag_p99=cdk.Duration.millis(500))},
        {"alarms": ReplicationAlarms(iterator_age=cdk.Duration.millis(90_500))},
        {"failure_destination": FailureDestination.s3(expiration=cdk.Duration.millis(1_500))},
    ],
)
def test_a_sub_second_duration_is_a_config_error_not_a_jsii_crash(props: dict[str, Any]) -> None:
    """Duration.to_seconds() raises a raw jsii RuntimeError ('cannot be converted into a whole number of
    seconds') for a non-whole number of seconds; validation must turn it into ReplicationConfigError."""
    with pytest.raises(ReplicationConfigError):
        build(**props)


def test_a_duration_threshold_error_names_the_value_given() -> None:
    """The message printed ``<aws_cdk.Duration object at 0x...>`` instead of the value (e.g. '30 seconds')."""
    with pytest.raises(ReplicationConfigError) as error:
        build(alarms=ReplicationAlarms(iterator_age=cdk.Duration.seconds(30)))
    assert "object at 0x" not in str(error.value)
    assert "30" in str(error.value)


def _rows(synthesized: Synthesized, stack: str, title: str) -> list[Any]:
    body = only_resource(synthesized.template_json(stack), "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    text = "".join(p if isinstance(p, str) else json.dumps(p) for p in body["Fn::Join"][1])
    text = re.sub(r'"\{"Ref": "AWS::Region"\}"', '"us-west-2"', text)
    text = re.sub(r'"\{"Fn::GetAtt": \[[^\]]*\]\}"', '"arn"', text)
    text = re.sub(r'"\{"Ref": "[^"]*"\}"', '"ref"', text)
    widget = next(w for w in json.loads(text)["widgets"] if w["properties"].get("title") == title)
    return widget["properties"]["metrics"]


def test_cross_region_math_expressions_are_evaluated_in_their_metrics_region(multi_active: Synthesized) -> None:
    """'Replicated records/s' divides another region's RecordsApplied by its PERIOD in an expression row that
    carries no region, so the expression runs in the dashboard's region (us-west-2) over a metric id fetched
    in us-east-1 / eu-west-1 (GetMetricData, hence metric math, is regional). Fix: search_region/search_account
    on the MathExpression, which CDK renders as the row's region/accountId."""
    rows = _rows(multi_active, "Profiles-us-west-2", "Replicated records/s")
    metric_region = {row[-1]["id"]: row[-1]["region"] for row in rows if isinstance(row[0], str)}
    for row in rows:
        options = row[-1]
        if "expression" not in options:
            continue
        (used,) = re.findall(r"applied\d+", options["expression"])[:1]
        assert options.get("region", "us-west-2") == metric_region[used], options


def test_readme_does_not_say_there_is_no_redrive_command() -> None:
    """README Operations still says 'There is no redrive command yet.' while `cdk-replication redrive` exists
    (cdk_replication/cli/redrive, docs/cli.md) and docs/operations.md tells the operator to run it."""
    assert "There is no redrive command yet" not in (ROOT / "README.md").read_text()


def test_a_failed_delivery_to_the_failure_destination_is_alarmed(one_way: Synthesized) -> None:
    """AWS documents DestinationDeliveryFailures (AWS/Lambda, FunctionName) as the count of attempts to send to an
    event source mapping's destination that failed (bucket policy, deleted bucket, KMS key); DroppedEventCount is
    documented as records over MaximumRecordAge/MaximumRetryAttempts that were not sent to a destination, not as
    failed deliveries. No alarm (and no widget) reads DestinationDeliveryFailures, so a destination that refuses
    Lambda's writes is only caught if DroppedEventCount happens to count it.
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html"""
    template = one_way.template_json("Employee-us-west-2")
    metrics = {
        r["Properties"].get("MetricName")
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert "DestinationDeliveryFailures" in metrics, sorted(m for m in metrics if m)
