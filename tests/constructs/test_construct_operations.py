"""Operations (issue 12): the failure destination (S3 by default, SQS or an existing bucket as options), the
alarms on every replicator, the ESM metrics and the dashboard of a ReplicatedTable, and the validation of
their props."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import constructs
import pytest
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from construct_helpers import (
    OTHER_ACCOUNT,
    PK,
    SOURCE_ACCOUNT,
    Synthesized,
    as_list,
    only_resource,
    resources_of_type,
    role_statements,
    synth,
)
from test_construct_compliance import test_cfn_lint_has_no_findings as assert_cfn_lint_clean
from test_construct_props import build, replicator

from cdk_replication import (
    FailureDestination,
    ReplicatedTable,
    ReplicationAlarms,
    ReplicationConfigError,
    ReplicationMode,
    TableLocation,
)
from cdk_replication.naming import replicator_function_name

SOURCE_STACK = "Employee-us-west-2"
ROLE_SIDS_BEFORE_TARGETS = ["ReadSourceStream", "ListStreams", "WriteOwnLogGroup"]


def _one_way(**props: Any) -> Any:
    return lambda app: ReplicatedTable(
        app,
        "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")],
        partition_key=PK,
        **props,
    )


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alarm properties by alarm name."""
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()}


# --- the failure destination ----------------------------------------------------------------------------------


@pytest.fixture
def with_sqs(sqs_destination: Synthesized) -> Synthesized:
    """The conftest shape (cdk-nag, cfn-lint and the IAM checks of every shape run over it too)."""
    return sqs_destination


@pytest.fixture(scope="module")
def with_existing_bucket(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    def build_app(app: cdk.App) -> Any:
        stack = cdk.Stack(app, "Shared", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
        cdk.CfnWaitConditionHandle(stack, "Placeholder")  # a template needs a resource (cfn-lint E1001)
        bucket = s3.Bucket.from_bucket_name(stack, "Failures", "org-replication-failures")
        return _one_way(failure_destination=FailureDestination.existing_bucket(bucket))(app)

    return synth(tmp_path_factory.mktemp("existing"), build_app)


def test_sqs_destination_is_the_queue_and_the_role_may_only_send_to_it(with_sqs: Synthesized) -> None:
    template = with_sqs.template_json(SOURCE_STACK)
    assert resources_of_type(template, "AWS::S3::Bucket") == {}
    (queue_id,) = resources_of_type(template, "AWS::SQS::Queue")
    queue = only_resource(template, "AWS::SQS::Queue")
    assert queue["Properties"] == {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 24 * 3600}
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
    statements = role_statements(template, "ReplicatorRole")
    assert [s["Sid"] for s in statements][:4] == [*ROLE_SIDS_BEFORE_TARGETS, "SendToFailureQueue"]
    assert statements[3]["Action"] == "sqs:SendMessage"
    assert statements[3]["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert not any(a.startswith("s3:") for s in statements for a in as_list(s["Action"]))
    assert with_sqs.subject.failure_queue is not None and with_sqs.subject.failure_bucket is None
    assert with_sqs.nag_error is None, with_sqs.nag_report()


def test_sqs_failure_destination_alarm_watches_visible_messages(with_sqs: Synthesized) -> None:
    template = with_sqs.template_json(SOURCE_STACK)
    (queue_id,) = resources_of_type(template, "AWS::SQS::Queue")
    alarm = _alarms(template)["Employee-us-west-2-Replicator-FailureDestination"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"
    )
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]


def test_existing_bucket_gets_exactly_put_object_under_aws_lambda_and_list_bucket(with_existing_bucket: Synthesized) -> None:
    template = with_existing_bucket.template_json(SOURCE_STACK)
    assert resources_of_type(template, "AWS::S3::Bucket") == {}
    assert resources_of_type(template, "AWS::S3::BucketPolicy") == {}, "a bucket of yours is never changed"
    arn = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::org-replication-failures"]]}
    statements = role_statements(template, "ReplicatorRole")
    assert statements[3:5] == [
        {
            "Sid": "WriteFailureRecords",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::org-replication-failures/aws/lambda/*"]]},
        },
        {"Sid": "ListFailureBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn},
    ]
    mapping = only_resource(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["DestinationConfig"] == {"OnFailure": {"Destination": arn}}
    assert with_existing_bucket.nag_error is None, with_existing_bucket.nag_report()
    assert_cfn_lint_clean(with_existing_bucket)


def test_s3_expiration_is_configurable(tmp_path: Path) -> None:
    synthesized = synth(tmp_path, _one_way(failure_destination=FailureDestination.s3(expiration=cdk.Duration.days(90))))
    bucket = only_resource(synthesized.template_json(SOURCE_STACK), "AWS::S3::Bucket")
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90


@pytest.mark.parametrize(
    ("expiration", "match"),
    [
        (cdk.Duration.hours(12), r"expiration is 12 hours \(43200000 ms\); S3 expires objects after whole days, at least 1"),
        (cdk.Duration.hours(36), r"expiration is 1 day 12 hours \(129600000 ms\); S3 expires objects after whole days"),
        (cdk.Duration.days(0), r"expiration is 0 days? \(0 ms\)"),
        # to_seconds() would raise a raw jsii error for these: the message names the value instead.
        (cdk.Duration.millis(1_500), r"expiration is 1 second 500 millis \(1500 ms\); S3 expires"),
        (cdk.Duration.millis(86_400_500), r"expiration is .*\(86400500 ms\); S3 expires"),
    ],
)
def test_expiration_below_a_day_or_not_whole_days_is_refused(expiration: cdk.Duration, match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=rf"^Employee: failure_destination {match}.*Fix: use Duration.days"):
        build(failure_destination=FailureDestination.s3(expiration=expiration))


def test_a_failure_destination_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ReplicationConfigError, match=r"failure_destination is a str .*not a FailureDestination"):
        build(failure_destination="s3")
    with pytest.raises(ReplicationConfigError, match=r"failure_destination bucket is 'name', not an s3.IBucket"):
        replicator(failure_destination=FailureDestination.existing_bucket("name"))  # type: ignore[arg-type]


def test_existing_bucket_is_refused_in_multi_active() -> None:
    bucket = s3.Bucket.from_bucket_name(cdk.Stack(cdk.App(), "S"), "B", "failures")
    with pytest.raises(ReplicationConfigError, match=r"existing_bucket\(...\) in MULTI_ACTIVE mode.*Fix: use FailureDestination.s3\(\)"):
        build(mode=ReplicationMode.MULTI_ACTIVE, failure_destination=FailureDestination.existing_bucket(bucket))


# --- alarms -----------------------------------------------------------------------------------------------------

#: name suffix -> (namespace, metric, statistic, threshold, comparison, periods, datapoints, period s, missing).
DEFAULT_ALARMS = {
    "IteratorAge": ("AWS/Lambda", "IteratorAge", "Maximum", 300000, "GreaterThanOrEqualToThreshold", 5, 5, 60, "notBreaching"),
    "FailedRecords": ("CdkReplication", "RecordsFailed", "Sum", 1, "GreaterThanOrEqualToThreshold", 3, 2, 300, "notBreaching"),
    "FunctionErrors": ("AWS/Lambda", "Errors", "Sum", 1, "GreaterThanOrEqualToThreshold", 1, 1, 300, "notBreaching"),
    "Throttles": ("AWS/Lambda", "Throttles", "Sum", 1, "GreaterThanOrEqualToThreshold", 3, 3, 300, "notBreaching"),
    "FailureDestination": (
        "AWS/Lambda", "OnFailureDestinationDeliveredEventCount", "Sum", 1, "GreaterThanOrEqualToThreshold", 1, 1, 300,
        "notBreaching",
    ),
    "DroppedRecords": ("AWS/Lambda", "DroppedEventCount", "Sum", 1, "GreaterThanOrEqualToThreshold", 1, 1, 300, "notBreaching"),
    # A function metric (FunctionName), not one of the mapping's: failed sends to the failure destination.
    "DestinationDeliveryFailures": (
        "AWS/Lambda", "DestinationDeliveryFailures", "Sum", 1, "GreaterThanOrEqualToThreshold", 1, 1, 300, "notBreaching",
    ),
    "ReplicationLagP99": ("CdkReplication", "ReplicationLagMs", None, 60000, "GreaterThanOrEqualToThreshold", 3, 3, 300, "notBreaching"),
    # The one alarm where missing data is breaching: a mapping that stopped polling emits nothing.
    "NotPolling": ("AWS/Lambda", "PolledEventCount", "SampleCount", 1, "LessThanThreshold", 3, 3, 300, "breaching"),
}


def test_every_replicator_has_the_default_alarms_without_actions(one_way: Synthesized) -> None:
    template = one_way.template_json(SOURCE_STACK)
    alarms = _alarms(template)
    assert sorted(alarms) == sorted(f"Employee-us-west-2-Replicator-{kind}" for kind in DEFAULT_ALARMS)
    (function_id,) = resources_of_type(template, "AWS::Lambda::Function")
    (mapping_id,) = resources_of_type(template, "AWS::Lambda::EventSourceMapping")
    dimensions = {
        "AWS/Lambda": [{"Name": "FunctionName", "Value": {"Ref": function_id}}],
        "CdkReplication": [{"Name": "SourceTable", "Value": "Employee"}],
        "ESM": [{"Name": "EventSourceMappingUUID", "Value": {"Ref": mapping_id}}],
    }
    for kind, (namespace, metric, statistic, threshold, comparison, periods, points, period, missing) in DEFAULT_ALARMS.items():
        alarm = alarms[f"Employee-us-west-2-Replicator-{kind}"]
        esm = metric.endswith("EventCount")
        assert (alarm["Namespace"], alarm["MetricName"], alarm.get("Statistic")) == (namespace, metric, statistic), kind
        assert alarm["Dimensions"] == dimensions["ESM" if esm else namespace], kind
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, comparison), kind
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Period"]) == (periods, points, period), kind
        assert alarm["TreatMissingData"] == missing, kind
        assert "AlarmActions" not in alarm and "OKActions" not in alarm, kind
    assert alarms["Employee-us-west-2-Replicator-ReplicationLagP99"]["ExtendedStatistic"] == "p99"


def test_alarm_actions_are_added_to_every_alarm_and_alarms_can_be_tuned_or_turned_off(tmp_path: Path) -> None:
    def build_app(app: cdk.App) -> Any:
        topic_stack = cdk.Stack(app, "Topics", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
        cdk.CfnWaitConditionHandle(topic_stack, "Placeholder")  # a template needs a resource (cfn-lint E1001)
        topic = sns.Topic.from_topic_arn(topic_stack, "T", f"arn:aws:sns:us-west-2:{SOURCE_ACCOUNT}:oncall")
        alarms = ReplicationAlarms(
            actions=[cloudwatch_actions.SnsAction(topic)],
            iterator_age=cdk.Duration.minutes(10),
            throttles=None,
            not_polling=False,
        )
        return _one_way(alarms=alarms)(app)

    synthesized = synth(tmp_path, build_app)
    assert synthesized.nag_error is None, synthesized.nag_report()
    assert_cfn_lint_clean(synthesized)
    alarms = _alarms(synthesized.template_json(SOURCE_STACK))
    assert "Employee-us-west-2-Replicator-Throttles" not in alarms
    assert "Employee-us-west-2-Replicator-NotPolling" not in alarms
    assert alarms["Employee-us-west-2-Replicator-IteratorAge"]["Threshold"] == 600000
    topic = f"arn:aws:sns:us-west-2:{SOURCE_ACCOUNT}:oncall"
    assert len(alarms) == len(DEFAULT_ALARMS) - 2
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_alarm_names_follow_the_replicators_path_in_its_stack() -> None:
    stack = cdk.Stack(cdk.App(), "Ops", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
    construct = replicator(constructs.Construct(stack, "Orders"))
    names = [stack.resolve(alarm.node.default_child.alarm_name) for alarm in construct.alarms.values()]
    assert sorted(names) == sorted(f"Ops-Orders-Replicator-{kind}" for kind in DEFAULT_ALARMS)


@pytest.mark.parametrize(
    ("alarms", "match"),
    [
        (ReplicationAlarms(actions=["arn:aws:sns:us-west-2:111111111111:oncall"]), r"alarms.actions\[0\] is str .*not a cloudwatch.IAlarmAction.*Fix: pass alarm actions"),
        (ReplicationAlarms(failed_records=0), r"alarms.failed_records is 0; .*ALARM always.*Fix: use a whole number >= 1, or failed_records=None"),
        (ReplicationAlarms(throttles=-3), r"alarms.throttles is -3"),
        (ReplicationAlarms(function_errors=1.5), r"alarms.function_errors is a float \(1.5\), not an int or None"),  # type: ignore[arg-type]
        (ReplicationAlarms(iterator_age=cdk.Duration.seconds(30)), r"alarms.iterator_age is 30 seconds \(30000 ms\), not a literal Duration of at least 60 s"),
        # Sub-second parts: to_seconds() raised a raw jsii RuntimeError; to_human_string() alone drops the 500 ms.
        (ReplicationAlarms(iterator_age=cdk.Duration.millis(90_500)), r"alarms.iterator_age is 1 minute 30 seconds \(90500 ms\), not a literal Duration of at least 60 s in whole seconds.*Fix: pass whole seconds"),
        (ReplicationAlarms(replication_lag_p99=cdk.Duration.millis(500)), r"alarms.replication_lag_p99 is 500 millis \(500 ms\)"),
        (ReplicationAlarms(replication_lag_p99=300), r"alarms.replication_lag_p99 is an int \(300\), not a Duration or None"),  # type: ignore[arg-type]
        (ReplicationAlarms(not_polling=None), r"alarms.not_polling is a NoneType \(None\), not a bool"),  # type: ignore[arg-type]
    ],
)
def test_bad_alarm_props_are_refused(alarms: ReplicationAlarms, match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=rf"^Employee: {match}"):
        build(alarms=alarms)
    with pytest.raises(ReplicationConfigError, match=match):
        replicator(alarms=alarms)


# --- the dashboard ----------------------------------------------------------------------------------------------


def _dashboard_body(template: dict[str, Any]) -> str:
    body = only_resource(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    return json.dumps(body)


def test_dashboard_is_in_the_source_stack_with_every_widget(one_way: Synthesized) -> None:
    template = one_way.template_json(SOURCE_STACK)
    dashboard = only_resource(template, "AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == "Employee-replication"
    body = _dashboard_body(template)
    for title in (
        "Replicated records/s", "Replication lag (ms)", "Iterator age (ms)", "Records failed", "Write failures by cause",
        "Failure destination deliveries", "Conflicts by kind", "Tombstones written", "Alarms",
    ):
        assert title in body, title
    for metric in (
        "RecordsApplied", "ReplicationLagMs", "IteratorAge", "WriteFailures", "OnFailureDestinationDeliveredEventCount",
        "DestinationDeliveryFailures", "DroppedEventCount",
        "Conflicts", "TombstonesWritten",
    ):
        assert metric in body, metric
    assert resources_of_type(one_way.template_json("Employee-us-east-1"), "AWS::CloudWatch::Dashboard") == {}
    assert one_way.subject.dashboard is not None


def test_multi_active_dashboard_shows_every_region_and_every_alarm(multi_active: Synthesized) -> None:
    template = multi_active.template_json("Profiles-us-west-2")
    body = _dashboard_body(template)
    # Another stack's alarms are named by ARN (CloudFormation cannot reference another region's stack).
    assert f"arn:aws:cloudwatch:eu-west-1:{OTHER_ACCOUNT}:alarm:Profiles-{OTHER_ACCOUNT}-eu-west-1-Replicator-Profiles-IteratorAge" in body
    assert "arn:aws:cloudwatch:us-east-1:111111111111:alarm:Profiles-us-east-1-Replicator-Profiles-NotPolling" in body
    for stack in ("Profiles-us-east-1", f"Profiles-{OTHER_ACCOUNT}-eu-west-1"):
        assert resources_of_type(multi_active.template_json(stack), "AWS::CloudWatch::Dashboard") == {}
        assert len(resources_of_type(multi_active.template_json(stack), "AWS::CloudWatch::Alarm")) == len(DEFAULT_ALARMS)


def _metric_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's metric widgets, parsed: the stack's region token read as us-west-2, other tokens as "ref"."""
    body = only_resource(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    text = "".join(part if isinstance(part, str) else json.dumps(part) for part in body["Fn::Join"][1])
    text = re.sub(r'"\{"Ref": "AWS::Region"\}"', '"us-west-2"', text)
    text = re.sub(r'"\{"(Ref|Fn::GetAtt)": [^}]*\}"', '"ref"', text)
    return [w["properties"] for w in json.loads(text)["widgets"] if w["type"] == "metric"]


def test_every_remote_writers_row_is_fetched_in_its_region_and_account(multi_active: Synthesized) -> None:
    """Every row (metric or expression) of another writer carries that writer's region and account: without
    them CloudWatch reads the row in the dashboard's own region and account, where that writer has no
    metrics. The label only tells which writer a row is for; the assertion is on ``region``/``accountId``
    (absent ``accountId`` means the dashboard's account). Every widget shows every writer."""
    remote = {"us-east-1": SOURCE_ACCOUNT, "eu-west-1": OTHER_ACCOUNT}
    for widget in _metric_widgets(multi_active.template_json("Profiles-us-west-2")):
        assert widget["region"] == "us-west-2", widget["title"]
        seen = set()
        for row in widget["metrics"]:
            options = row[-1]
            (region,) = [r for r in ("us-west-2", *remote) if r in options["label"]] or [None]
            assert region is not None, (widget["title"], options)
            seen.add(region)
            if region in remote:
                fetched = (options.get("region"), options.get("accountId", SOURCE_ACCOUNT))
                assert fetched == (region, remote[region]), (widget["title"], row)
                if "FunctionName" in row:  # another stack's function, by its literal physical name
                    assert row[row.index("FunctionName") + 1] == f"Profiles-{region}-replicator", row
        assert seen == {"us-west-2", *remote}, widget["title"]


def test_replicated_table_functions_have_deterministic_names(multi_active: Synthesized) -> None:
    """Every writer's function is named ``<table>-<region>-replicator`` (the dashboard in another region names
    it literally; a SEARCH on words of a generated name broke once CloudFormation truncated it)."""
    for stack, region in (
        ("Profiles-us-west-2", "us-west-2"), ("Profiles-us-east-1", "us-east-1"),
        (f"Profiles-{OTHER_ACCOUNT}-eu-west-1", "eu-west-1"),
    ):
        function = only_resource(multi_active.template_json(stack), "AWS::Lambda::Function")
        assert function["Properties"]["FunctionName"] == f"Profiles-{region}-replicator", stack
    assert "SEARCH('{AWS/Lambda" not in _dashboard_body(multi_active.template_json("Profiles-us-west-2"))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("Orders", "Orders-eu-west-1-replicator"),
        ("Orders_2024", "Orders_2024-eu-west-1-replicator"),
        # Lambda refuses "."; the hash of the real name keeps "a.b" apart from "a-b".
        ("a.b", "a-b-eu-west-1-replicator-" + hashlib.sha256(b"a.b-eu-west-1-replicator").hexdigest()[:8]),
        ("a-b", "a-b-eu-west-1-replicator"),
    ],
)
def test_replicator_function_name(table: str, expected: str) -> None:
    assert replicator_function_name(table, "eu-west-1") == expected


def test_a_long_table_name_gives_a_function_name_of_at_most_64_characters() -> None:
    names = {replicator_function_name("T" * 200 + suffix, "ap-southeast-2") for suffix in ("a", "b", ".c")}
    assert len(names) == 3 and all(len(name) <= 64 for name in names), names


def test_a_standalone_replicators_function_name_is_generated_unless_given() -> None:
    generated = replicator()
    assert generated.function_name is None
    assert "FunctionName" not in Template.from_stack(cdk.Stack.of(generated)).find_resources(
        "AWS::Lambda::Function"
    ).popitem()[1]["Properties"]
    named = replicator(function_name="orders-replicator")
    Template.from_stack(cdk.Stack.of(named)).has_resource_properties(
        "AWS::Lambda::Function", {"FunctionName": "orders-replicator"}
    )


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("orders.replicator", r"function_name 'orders.replicator' is not a Lambda function name.*Fix: use 1-64"),
        ("x" * 65, r"function_name .x{65}. is not a Lambda function name"),
        ("", r"function_name '' is not a Lambda function name"),
        (cdk.Aws.STACK_NAME, r"function_name is .*not a literal function name"),
    ],
    ids=["dot", "too-long", "empty", "token"],
)
def test_a_bad_function_name_is_refused(name: str, match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=rf"^Mine/Replicator: {match}"):
        replicator(function_name=name)


def test_dashboard_can_be_named_or_turned_off() -> None:
    named = build(dashboard_name="orders-ops")
    Template.from_stack(named.source_stack).has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "orders-ops"}
    )
    stage = cdk.Stage(cdk.App(), "prod")
    staged = ReplicatedTable(
        stage, "Employee", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="us-east-1")], partition_key=PK,
    )
    Template.from_stack(staged.source_stack).has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "prod-Employee-replication"}
    )
    off = build(dashboard=False)
    assert off.dashboard is None
    assert not [c for c in off.source_stack.node.find_all() if c.node.id == "Dashboard"]


@pytest.mark.parametrize(
    ("props", "match"),
    [
        ({"dashboard_name": "orders ops"}, r"dashboard_name 'orders ops' is not a CloudWatch dashboard name"),
        ({"dashboard_name": "x" * 256}, r"is not a CloudWatch dashboard name.*Fix: use 1-255 characters"),
        ({"dashboard_name": "ops", "dashboard": False}, r"dashboard_name 'ops' is given but dashboard=False"),
        ({"dashboard": "yes"}, r"dashboard is a str .*not a bool"),
    ],
)
def test_bad_dashboard_props_are_refused(props: dict[str, Any], match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=match):
        build(**props)
