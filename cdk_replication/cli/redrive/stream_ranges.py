"""Re-reading a failed batch from its stream, by shard and sequence range, for a failure record without payload.

DynamoDB Streams keeps records 24 hours and a Kinesis data stream its retention period (24 hours to 365
days): a range older than that, or of a stream that is gone, cannot be read. Such a range is reported exactly
(stream, shard, first..last sequence number, why) so that its keys can be found another way
(``verify --repair``); it is never guessed at.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.items import to_json_item
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.redrive.failure_records import DYNAMODB, BatchInfo

#: Records per GetRecords call.
PAGE_LIMIT = 1000
#: Empty pages in a row after which an open shard is taken to hold nothing more (GetRecords of an open
#: shard keeps answering, possibly empty, until records arrive).
MAX_EMPTY_PAGES = 5
#: Error codes that mean "this range is no longer in the stream": trimmed, the stream or shard gone.
GONE_CODES = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException"})
#: Error codes of a request the stream refuses as invalid: bad input (exit 2), except for :data:`GONE_MESSAGE`.
INVALID_CODES = frozenset({"ValidationException", "InvalidArgumentException"})
#: DynamoDB Local answers ``ValidationException: Invalid SequenceNumber for the shard`` (not
#: TrimmedDataAccessException) for a sequence number its shard no longer holds: such an answer is a lost range.
GONE_MESSAGE = "invalid sequencenumber for the shard"


@dataclass(frozen=True)
class LostRange:
    """A batch range the stream no longer holds (all or part of it)."""

    stream_arn: str
    shard_id: str
    start: str
    end: str
    reason: str

    def describe(self) -> str:
        return f"{self.stream_arn} shard {self.shard_id} {self.start}..{self.end}: {self.reason}"

    def as_json(self) -> dict[str, str]:
        return {"streamArn": self.stream_arn, "shardId": self.shard_id, "startSequenceNumber": self.start,
                "endSequenceNumber": self.end, "reason": self.reason}


@dataclass
class RangeRead:
    """The records of a batch range read again (Lambda's event-record shapes), and what was gone."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lost: LostRange | None = None


def _epoch_seconds(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return float(value.timestamp())
    return float(value) if isinstance(value, (int, float)) else None


def dynamodb_event_record(raw: dict[str, Any], region: str, stream_arn: str) -> dict[str, Any]:
    """A boto3 ``dynamodbstreams`` record in the shape of a record of Lambda's DynamoDB Streams event."""
    ddb = raw["dynamodb"]
    body: dict[str, Any] = {name: to_json_item(ddb[name]) for name in ("Keys", "NewImage", "OldImage") if name in ddb}
    body.update(SequenceNumber=ddb["SequenceNumber"], SizeBytes=ddb.get("SizeBytes"),
                StreamViewType=ddb.get("StreamViewType"),
                ApproximateCreationDateTime=_epoch_seconds(ddb.get("ApproximateCreationDateTime")))
    record: dict[str, Any] = {"eventID": raw.get("eventID"), "eventName": raw.get("eventName"),
                              "eventVersion": raw.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
                              "awsRegion": region, "dynamodb": body, "eventSourceARN": stream_arn}
    identity = raw.get("userIdentity")
    if identity:
        record["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    return record


def kinesis_event_record(raw: dict[str, Any], region: str, stream_arn: str, shard_id: str) -> dict[str, Any]:
    """A boto3 ``kinesis`` record in the shape of a record of Lambda's Kinesis event (data in base64)."""
    sequence = str(raw["SequenceNumber"])
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": raw.get("PartitionKey"),
                    "sequenceNumber": sequence, "data": base64.b64encode(bytes(raw["Data"])).decode("ascii"),
                    "approximateArrivalTimestamp": _epoch_seconds(raw.get("ApproximateArrivalTimestamp"))},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record", "awsRegion": region, "eventSourceARN": stream_arn,
    }


class RangeReader:
    """Reads batch ranges again.

    Args:
        client_for: ``client_for(kind, region)`` -> a ``dynamodbstreams`` (kind :data:`DYNAMODB`) or ``kinesis``
            client for the stream's region.
        endpoint_arn: the ARN to call the stream by (DynamoDB Local names its streams differently from the
            records Lambda writes); default: the record's own.
    """

    def __init__(self, client_for: Callable[[str, str], Any], retrier: Retrier,
                 endpoint_arn: Callable[[str], str] = lambda arn: arn) -> None:
        self.client_for = client_for
        self.retrier = retrier
        self.endpoint_arn = endpoint_arn

    def read(self, batch: BatchInfo) -> RangeRead:
        """The records of ``batch``'s range, or what of it is gone.

        Raises:
            BadInput: the credentials may not read the stream.
        """
        from botocore.exceptions import ClientError, ParamValidationError

        if not (batch.start.isdigit() and batch.end.isdigit()) or batch.stream_arn.count(":") < 5:
            raise BadInput(f"the failure record of {batch.describe()} does not name a stream ARN and decimal "
                           "sequence numbers: it is not a record Lambda wrote; leave it out of the location")
        region = batch.stream_arn.split(":")[3]
        client = self.client_for(batch.kind, region)
        try:
            return self._read(client, batch, region)
        except ParamValidationError as exc:
            raise BadInput(f"the stream refuses the shard or sequence numbers of the failure record of "
                           f"{batch.describe()}: {exc}") from None
        except ClientError as exc:
            code = error_code(exc)
            if code in GONE_CODES or (code in INVALID_CODES and GONE_MESSAGE in error_message(exc).lower()):
                return RangeRead(lost=self._lost(batch, f"{code}: {error_message(exc)}"))
            if code in INVALID_CODES:
                raise BadInput(f"{batch.stream_arn} refuses the range of a failure record ({code}: "
                               f"{error_message(exc)}) — shard {batch.shard_id} {batch.start}..{batch.end}: check "
                               "that the record is of this stream (a stream deleted and created again under the "
                               "same name is another stream); nothing was written") from None
            if code in ACCESS_ERROR_CODES:
                service = "dynamodb:GetShardIterator and dynamodb:GetRecords" if batch.kind == DYNAMODB else \
                    "kinesis:GetShardIterator and kinesis:GetRecords"
                raise BadInput(f"access denied reading {batch.stream_arn} ({code}): grant {service} on it "
                               "(or pass --source-profile / --profile)") from None
            raise

    @staticmethod
    def _lost(batch: BatchInfo, reason: str) -> LostRange:
        return LostRange(batch.stream_arn, batch.shard_id, batch.start, batch.end, reason)

    def _read(self, client: Any, batch: BatchInfo, region: str) -> RangeRead:
        start, end = int(batch.start), int(batch.end)
        arn = self.endpoint_arn(batch.stream_arn)
        if batch.kind == DYNAMODB:
            iterator_args: dict[str, Any] = {"StreamArn": arn, "SequenceNumber": batch.start}
            records_args: dict[str, Any] = {}
        else:  # by ARN, which also reaches a stream of another account (with a resource policy)
            iterator_args = {"StreamARN": arn, "StartingSequenceNumber": batch.start}
            records_args = {"StreamARN": arn}
        iterator = self.retrier.call(client.get_shard_iterator, ShardId=batch.shard_id,
                                     ShardIteratorType="AT_SEQUENCE_NUMBER", **iterator_args).get("ShardIterator")
        result, last, empty, past_end = RangeRead(), None, 0, False
        while iterator and empty < MAX_EMPTY_PAGES and not past_end:
            page = self.retrier.call(client.get_records, ShardIterator=iterator, Limit=PAGE_LIMIT, **records_args)
            raws = page.get("Records", [])
            empty = 0 if raws else empty + 1
            for raw in raws:
                text = str(raw["dynamodb"]["SequenceNumber"] if batch.kind == DYNAMODB else raw["SequenceNumber"])
                sequence = int(text)
                if last is None and sequence != start:
                    # Only what lies before the first record found is gone: start..(that record - 1).
                    result.lost = LostRange(batch.stream_arn, batch.shard_id, batch.start,
                                            str(sequence - 1).zfill(len(text)),
                                            f"the stream no longer holds {batch.start}: the first record it has "
                                            f"from there is {text}")
                past_end = sequence >= end
                if sequence > end:
                    break
                last = sequence
                result.records.append(dynamodb_event_record(raw, region, batch.stream_arn) if batch.kind == DYNAMODB
                                      else kinesis_event_record(raw, region, batch.stream_arn, batch.shard_id))
                if past_end:
                    break
            iterator = page.get("NextShardIterator")
        if result.lost is None and not past_end:
            found = "nothing" if last is None else f"records up to {last}"
            result.lost = self._lost(batch, f"the shard holds {found}, not the batch's last record {batch.end}")
        return result
