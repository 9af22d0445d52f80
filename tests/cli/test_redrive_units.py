"""Pieces of ``redrive`` without a database: the failure record parser and the stream-range reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.redrive.failure_records import (
    DYNAMODB,
    BatchInfo,
    NotAFailureRecord,
    parse_failure_record,
)
from cdk_replication.cli.redrive.stream_ranges import RangeReader

ARN = "arn:aws:dynamodb:us-east-1:111111111111:table/orders/stream/2026-11-30T00:00:00.000"
INFO = {"shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "200", "streamArn": ARN,
        "batchSize": 2}


def test_the_payload_gives_the_records_and_sns_envelopes_are_opened() -> None:
    event = {"Records": [{"eventName": "INSERT"}]}
    record = parse_failure_record("x", json.dumps({"DDBStreamBatchInfo": INFO, "payload": json.dumps(event)}).encode())
    assert record.records == event["Records"] and record.batch == BatchInfo(DYNAMODB, ARN, "shardId-1", "100", "200", 2)
    sns = {"Type": "Notification", "Message": json.dumps({"DDBStreamBatchInfo": INFO})}
    assert parse_failure_record("y", json.dumps(sns).encode()).records is None


def test_an_unusable_payload_falls_back_to_the_stream() -> None:
    record = parse_failure_record("x", json.dumps({"DDBStreamBatchInfo": INFO, "payload": "{not json"}).encode())
    assert record.records is None and record.payload_problem is not None and "not JSON" in record.payload_problem


@pytest.mark.parametrize(("body", "why"), [
    (b"\xff\xfe", "not JSON"), (b"[1]", "not a JSON object"), (b'{"a": 1}', "no DDBStreamBatchInfo"),
    (json.dumps({"KinesisBatchInfo": {**INFO, "shardId": ""}}).encode(), "lacks shardId"),
])
def test_what_is_not_a_failure_record(body: bytes, why: str) -> None:
    with pytest.raises(NotAFailureRecord, match=why):
        parse_failure_record("x", body)


class _FakeStreams:
    """A DynamoDB stream shard holding ``sequences``; ``open`` shards keep answering empty pages."""

    def __init__(self, sequences: list[int], open_shard: bool = False) -> None:
        self.sequences = sequences
        self.open_shard = open_shard

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        first = next(i for i, s in enumerate(self.sequences) if s >= int(kwargs["SequenceNumber"]))
        return {"ShardIterator": str(first)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        at = int(ShardIterator)
        page = self.sequences[at:at + 2]
        records = [{"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(s), "Keys": {"pk": {"S": str(s)}}}}
                   for s in page]
        done = at + len(page) >= len(self.sequences) and not self.open_shard
        return {"Records": records, **({} if done else {"NextShardIterator": str(at + len(page))})}


def _read(sequences: list[int], start: int, end: int, open_shard: bool = False) -> Any:
    reader = RangeReader(lambda kind, region: _FakeStreams(sequences, open_shard), Retrier(1))
    return reader.read(BatchInfo(DYNAMODB, ARN, "shardId-1", str(start), str(end)))


def test_a_whole_range_is_read_up_to_its_last_record() -> None:
    read = _read([100, 150, 200, 250], 100, 200)
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == ["100", "150", "200"] and read.lost is None


def test_a_first_record_after_the_start_means_the_start_is_trimmed() -> None:
    read = _read([150, 200], 100, 200)
    assert read.lost is not None and "no longer holds 100: the first record it has from there is 150" in read.lost.reason
    # Only 100..149 is gone: 150 and 200 were read (and their keys are resynced).
    assert (read.lost.start, read.lost.end) == ("100", "149")
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == ["150", "200"]


def test_a_range_whose_end_never_comes_is_reported() -> None:
    read = _read([100, 150], 100, 200, open_shard=True)
    assert read.lost is not None and "holds records up to 150, not the batch's last record 200" in read.lost.reason


class _Refusing:
    """A stream client whose GetShardIterator answers ``code: message``."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": self.message}}, "GetShardIterator")


def _refused(code: str, message: str, start: str = "100") -> Any:
    reader = RangeReader(lambda kind, region: _Refusing(code, message), Retrier(1))
    return reader.read(BatchInfo(DYNAMODB, ARN, "shardId-1", start, "200"))


def test_dynamodb_locals_answer_for_a_sequence_number_no_longer_held_is_a_lost_range() -> None:
    read = _refused("ValidationException", "Invalid SequenceNumber for the shard")
    assert read.lost is not None and "Invalid SequenceNumber" in read.lost.reason


@pytest.mark.parametrize("code, message", [
    ("ValidationException", "1 validation error detected: Value at 'shardId' failed to satisfy constraint"),
    ("InvalidArgumentException", "StartingSequenceNumber 100 used in GetShardIterator on shard shardId-1 is "
                                 "invalid because it did not come from this stream"),
])
def test_a_range_the_stream_refuses_as_invalid_is_bad_input_naming_the_stream(code: str, message: str) -> None:
    from cdk_replication.cli.errors import BadInput

    with pytest.raises(BadInput, match=f"{ARN}.*{code}"):
        _refused(code, message)


def test_sequence_numbers_that_are_not_decimal_are_bad_input() -> None:
    from cdk_replication.cli.errors import BadInput

    with pytest.raises(BadInput, match="decimal sequence numbers"):
        _refused("TrimmedDataAccessException", "unused", start="abc")


class _FakeQueue:
    """An SQS client holding ``bodies``; records which receipt handles were made visible again."""

    def __init__(self, bodies: list[str]) -> None:
        self.messages = [{"MessageId": f"m{i}", "ReceiptHandle": f"h{i}", "Body": b} for i, b in enumerate(bodies)]
        self.received = False
        self.visible_again: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        first, self.received = not self.received, True
        return {"Messages": self.messages if first else []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        assert VisibilityTimeout == 0
        self.visible_again.append(ReceiptHandle)


class _InterruptedReader:
    def read(self, batch: BatchInfo) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while a range is read again, before any key is resynced


def test_sqs_messages_are_visible_again_when_the_run_is_interrupted_while_reading() -> None:
    """Messages received are hidden for 15 minutes; an error or Ctrl-C anywhere in the run must hand them
    back at once, not only a run that reaches its end."""
    from types import SimpleNamespace

    from cdk_replication.cli.redrive.locations import QueueLocation
    from cdk_replication.cli.redrive.run import run_redrive

    body = json.dumps({"DDBStreamBatchInfo": {**INFO}})  # no payload: the range is read again
    queue = _FakeQueue([body, body])
    location = QueueLocation(queue, "https://sqs.us-east-1.amazonaws.com/111111111111/q")
    with pytest.raises(KeyboardInterrupt):
        run_redrive(location, SimpleNamespace(), SimpleNamespace(targets=[]), _InterruptedReader(),  # type: ignore[arg-type]
                    workers=1, dry_run=False, show_progress=False)
    assert sorted(queue.visible_again) == ["h0", "h1"]


def test_a_bucket_that_refuses_the_markers_write_is_refused_naming_the_permission() -> None:
    from botocore.exceptions import ClientError

    from cdk_replication.cli.errors import BadInput
    from cdk_replication.cli.redrive.locations import S3Location

    class _NoPut:
        def put_object(self, **kwargs: Any) -> None:
            assert kwargs["Key"].startswith("cdk-replication/redriven/")
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")

    with pytest.raises(BadInput, match=r"s3:PutObject on arn:aws:s3:::failures/cdk-replication/redriven/\*"):
        S3Location(_NoPut(), "failures", "aws/lambda/").check_marking()
