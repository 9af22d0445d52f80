"""``migrate --change-source KINESIS`` against moto: the source streams its changes to a Kinesis data stream.

moto implements Kinesis (DescribeStreamSummary, retention changes) and Lambda mappings on a Kinesis stream,
but not DynamoDB's Kinesis streaming destinations: EnableKinesisStreamingDestination and
DescribeKinesisStreamingDestination answer 500 "not implemented" (moto 5.2.5). So the destinations are
stood in for by a botocore ``before-call`` hook that answers DescribeKinesisStreamingDestination in AWS's
shape from a dict the test controls (``_Destinations``); every other call goes to moto. Whether a real
table streams to the stream, and the records themselves, are the local runtime's and e2e tests' business.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from .test_migrate import ACCOUNT, REGION, _all_items, _bucket, _function_with_mapping, _source, aws, moto_url, run
from .test_migrate_construct import _hook, _stack_import

__all__ = ["aws", "moto_url"]  # fixtures, imported for pytest

MICRO = "MICROSECOND"
ENABLE = "aws dynamodb enable-kinesis-streaming-destination --region eu-west-1 --table-name {table} " \
    "--stream-arn {arn} --enable-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND"


class _Destinations:
    """DescribeKinesisStreamingDestination answered from ``tables``: table name -> destinations, a list of such
    lists to answer one after the other (the last one repeated), or an exception to raise; ``calls`` counts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tables: dict[str, Any] = {}
        self.calls = 0
        _hook(monkeypatch, "before-call.dynamodb.DescribeKinesisStreamingDestination", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.calls += 1
        # A command that waits for a state that never comes fails the test instead of hanging it.
        assert self.calls < 50, "DescribeKinesisStreamingDestination polled 50 times"
        table = json.loads(params["body"])["TableName"]
        answers = self.tables.get(table, [])
        if isinstance(answers, Exception):
            raise answers
        if answers and isinstance(answers[0], list):
            answers = answers.pop(0) if len(answers) > 1 else answers[0]
        return AWSResponse("", 200, {}, None), {"TableName": table, "KinesisDataStreamDestinations": answers}


def _destination(arn: str, status: str = "ACTIVE", precision: str = MICRO) -> dict[str, str]:
    return {"StreamArn": arn, "DestinationStatus": status, "ApproximateCreationDateTimePrecision": precision}


def _data_stream(aws: dict[str, Any], name: str, hours: int = 24) -> str:
    """A moto Kinesis data stream ``name`` keeping records ``hours``; its ARN."""
    kinesis = boto3.session.Session().client("kinesis", endpoint_url=aws["url"])
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    if hours != 24:
        kinesis.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=hours)
    return str(arn)


def _deadline(state: dict[str, Any], hours: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(state["exportStartedAt"] + hours * 3600, datetime.timezone.utc)


def test_kinesis_export_only_then_after_import(aws, monkeypatch) -> None:
    items = _source(aws, "ledger")
    bucket = f"ledger-replica-migration-{ACCOUNT}-{REGION}"
    _bucket(aws, bucket)
    target = f"{REGION}:ledger-replica"
    arn = _data_stream(aws, "ledger-changes", hours=168)
    destinations = _Destinations(monkeypatch)
    destinations.tables["ledger"] = [_destination(arn)]
    summaries: list[str] = []
    _hook(monkeypatch, "before-call.kinesis.DescribeStreamSummary", lambda **_: summaries.append("call"))

    code, out, err = run(aws, "ledger", target, "--export-only", "--change-source", "kinesis", "--json")
    assert code == 0, err
    doc = json.loads(out)
    state = json.loads(Path(doc["stateFile"]).read_text())
    assert (state["changeSource"], state["kinesisStreamArn"], state["streamRetentionHours"]) == ("KINESIS", arn, 168)
    assert (doc["changeSource"], doc["kinesisStreamArn"], doc["streamRetentionHours"]) == ("KINESIS", arn, 168)
    assert doc["deadline"] == _deadline(state, 168).isoformat()
    assert f"the Kinesis data stream {arn} keeps changes for 168 hours" in doc["nextSteps"][2]
    assert f"--change-source KINESIS --kinesis-stream-arn {arn} --after-import" in doc["nextSteps"][1]
    assert [s["step"] for s in doc["steps"] if s["status"] == "done"] == ["stream", "pitr", "export"]
    assert f"[stream] done: streams to {arn}, kept 168 hours" in err and "warning" not in err
    ddb = aws["dynamodb"]
    # The DynamoDB stream is not the change source: it stays off.
    assert not (ddb.describe_table(TableName="ledger")["Table"].get("StreamSpecification") or {}).get("StreamEnabled")
    assert summaries == ["call"]

    # The same command without --change-source prints the result again, from the state file.
    code, out, err = run(aws, "ledger", target, "--export-only")
    assert code == 0, err
    assert f"finish both before {_deadline(state, 168).strftime('%Y-%m-%d %H:%M UTC')}: the Kinesis data stream" in out
    # The state file is for KINESIS: an explicit other change source is refused.
    code, _, err = run(aws, "ledger", target, "--export-only", "--change-source", "DYNAMODB_STREAMS")
    assert code == 2 and "is for --change-source KINESIS, not DYNAMODB_STREAMS" in err

    _stack_import(aws, "ledger-replica", bucket, doc["exportDataLocation"], source="ledger")
    on_other_stream = _function_with_mapping(aws, _data_stream(aws, "ledger-other"), "ledger-wrong")
    code, _, err = run(aws, "ledger", target, "--after-import", "--event-source-mapping-uuid", on_other_stream)
    assert code == 2 and f"not the Kinesis data stream the source streams to ({arn})" in err
    mapping = _function_with_mapping(aws, arn, "ledger-replicator")

    # 100 hours after the export: too late for a DynamoDB stream, not for this data stream.
    state_path = Path(doc["stateFile"])
    state["exportStartedAt"] -= 100 * 3600
    state_path.write_text(json.dumps(state))
    code, out, err = run(aws, "ledger", target, "--after-import", "--event-source-mapping-uuid", mapping, "--json")
    assert code == 0, err
    assert "warning" not in err and json.loads(out)["streamRetentionHours"] == 168
    assert aws["lambda"].get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
    assert _all_items(aws, "ledger-replica") == {(it["pk"]["S"], it["sk"]["N"]): it for it in items}
    assert summaries == ["call"]  # the retention came from the state file

    # 170 hours: past the data stream's retention.
    state = json.loads(state_path.read_text())
    state["done"].remove("mapping")
    state["exportStartedAt"] -= 70 * 3600
    state_path.write_text(json.dumps(state))
    aws["lambda"].update_event_source_mapping(UUID=mapping, Enabled=False)
    code, _, err = run(aws, "ledger", target, "--after-import", "--event-source-mapping-uuid", mapping)
    assert code == 0, err
    assert "export started 170 hours ago, more than 168 hours ago" in err and "verify SOURCE TARGET --repair" in err


def test_kinesis_source_without_a_usable_destination_changes_nothing(aws, monkeypatch) -> None:
    _source(aws, "stock")
    _bucket(aws, "exports-k")
    one, two = _data_stream(aws, "stock-one"), _data_stream(aws, "stock-two")
    destinations = _Destinations(monkeypatch)
    base = ["stock", "stock-copy", "--s3-bucket", "exports-k", "--export-only"]
    kinesis = [*base, "--change-source", "KINESIS"]
    cases = [
        ([], [*kinesis], ENABLE.format(table="stock", arn="STREAM_ARN")),
        ([_destination(one, "DISABLED")], kinesis, "stock-one is DISABLED, so the replicator would miss "
         f"changes: enable it with `{ENABLE.format(table='stock', arn=one)}`"),
        ([_destination(one, "ENABLE_FAILED")], kinesis, "is ENABLE_FAILED"),
        ([_destination(one), _destination(two)], kinesis, "to 2 Kinesis data streams"),
        ([_destination(one), _destination(two)], [*kinesis, "--kinesis-stream-arn", f"{one}x"],
         f"does not stream its changes to {one}x"),
        ([_destination(one)], [*base, "--kinesis-stream-arn", one], "--kinesis-stream-arn goes with --change-source"),
        ([_destination(one)], [*kinesis, "--kinesis-stream-arn", "stock-one"], "is not a Kinesis data stream ARN"),
        ([_destination(one)], [*base, "--change-source", "firehose"], ""),  # argparse: invalid choice
    ]
    for answer, argv, message in cases:
        destinations.tables["stock"] = answer
        code, _, err = run(aws, *argv)
        assert (code, message in err) == (2, True), (argv, err)

    denied = {"Error": {"Code": "AccessDeniedException", "Message": "no"}}
    destinations.tables["stock"] = ClientError(denied, "DescribeKinesisStreamingDestination")
    code, _, err = run(aws, *kinesis)
    assert code == 2 and "access denied: dynamodb:DescribeKinesisStreamingDestination" in err

    ddb = aws["dynamodb"]
    assert not (ddb.describe_table(TableName="stock")["Table"].get("StreamSpecification") or {}).get("StreamEnabled")
    pitr = ddb.describe_continuous_backups(TableName="stock")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket="exports-k")
    assert not Path(".cdk-replication").exists()


def test_enabling_is_waited_for_and_millisecond_and_unreadable_retention_warn(aws, monkeypatch) -> None:
    _source(aws, "orders-k")
    _bucket(aws, "exports-m")
    arn = _data_stream(aws, "orders-k-changes", hours=72)
    destinations = _Destinations(monkeypatch)
    milli = "MILLISECOND"
    enabling, active = [_destination(arn, "ENABLING", milli)], [_destination(arn, "ACTIVE", milli)]
    destinations.tables["orders-k"] = [enabling, enabling, enabling, active]

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeStreamSummary")

    _hook(monkeypatch, "before-call.kinesis.DescribeStreamSummary", refuse)
    code, out, err = run(aws, "orders-k", "orders-k-copy", "--s3-bucket", "exports-m", "--export-only",
                         "--change-source", "kinesis", "--json")
    assert code == 0, err
    assert destinations.calls == 4  # the precheck, then the stream step until ACTIVE
    assert f"destination {arn} has MILLISECOND timestamps" in err and "within the same millisecond" in err
    assert "aws dynamodb update-kinesis-streaming-destination --region eu-west-1 --table-name orders-k --stream-arn " \
        f"{arn} --update-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND" in err
    assert "cannot read the retention" in err and "assumes 24 hours, Kinesis' minimum" in err
    doc = json.loads(out)
    state = json.loads(Path(doc["stateFile"]).read_text())
    assert (state["streamRetentionHours"], state["streamRetentionRead"]) == (24, False)
    assert doc["deadline"] == _deadline(state, 24).isoformat()
    assert "keeps changes for 24 hours after the export started (the data stream's retention could not" \
        in doc["nextSteps"][2]


def test_single_command_migration_enables_the_mapping_on_the_data_stream(aws, monkeypatch) -> None:
    """The source has no DynamoDB stream at all: with KINESIS that is not "no stream yet"."""
    _source(aws, "carts-k")
    _bucket(aws, "exports-s")
    arn = _data_stream(aws, "carts-k-changes", hours=48)
    _Destinations(monkeypatch).tables["carts-k"] = [_destination(arn)]
    mapping = _function_with_mapping(aws, arn, "carts-k-replicator")
    code, out, err = run(aws, "carts-k", "carts-k-copy", "--s3-bucket", "exports-s", "--change-source", "kinesis",
                         "--event-source-mapping-uuid", mapping, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["step"] for s in doc["steps"] if s["status"] == "done"] == \
        ["stream", "pitr", "export", "import", "ttl", "mapping"]
    assert (doc["changeSource"], doc["streamRetentionHours"]) == ("KINESIS", 48)
    assert aws["lambda"].get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
    assert not (aws["dynamodb"].describe_table(TableName="carts-k")["Table"].get("StreamSpecification") or {}).get(
        "StreamEnabled")
