"""The record Lambda sends to an on-failure destination when it discards a stream batch (AWS's shape).

An S3 destination receives the whole document, including ``payload`` (the invocation event as a JSON
string); SQS and SNS receive it without ``payload``. ``DDBStreamBatchInfo`` (DynamoDB Streams) or
``KinesisBatchInfo`` (Kinesis) names the stream, the shard and the first and last sequence number of the batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ``BatchInfo.kind`` of a DynamoDB Streams batch and of a Kinesis batch.
DYNAMODB, KINESIS = "dynamodb", "kinesis"
_BATCH_INFO_KEYS = {"DDBStreamBatchInfo": DYNAMODB, "KinesisBatchInfo": KINESIS}


class NotAFailureRecord(ValueError):
    """The object is not an on-failure record of a stream event source mapping; the message says why."""


@dataclass(frozen=True)
class BatchInfo:
    """Where the failed batch was in its stream.

    Attributes:
        kind: :data:`DYNAMODB` or :data:`KINESIS`.
        stream_arn: the DynamoDB stream's ARN, or the Kinesis data stream's.
        shard_id / start / end: the shard, and the first and last sequence number of the batch (inclusive).
        batch_size: records in the batch, as Lambda counted them (``None`` when absent).
    """

    kind: str
    stream_arn: str
    shard_id: str
    start: str
    end: str
    batch_size: int | None = None

    def describe(self) -> str:
        """``<stream ARN> shard <id> <start>..<end>``, for messages."""
        return f"{self.stream_arn} shard {self.shard_id} {self.start}..{self.end}"


@dataclass(frozen=True)
class FailureRecord:
    """One on-failure record.

    Attributes:
        name: where it was read (an S3 URL, a file, an SQS message id), for messages.
        batch: the failed batch's stream, shard and sequence range.
        records: the event's ``Records`` from ``payload``; ``None`` without a usable payload (then the
            batch is re-read from the stream).
        payload_problem: why a ``payload`` that was present could not be used (``None`` otherwise).
        condition: ``requestContext.condition`` (``RetryAttemptsExhausted``, ``MaximumRecordAgeExceeded``).
        timestamp: when Lambda wrote it.
    """

    name: str
    batch: BatchInfo
    records: list[dict[str, Any]] | None
    payload_problem: str | None = None
    condition: str | None = None
    timestamp: str | None = None


def _batch_info(document: Mapping[str, Any]) -> BatchInfo:
    found = [(key, kind) for key, kind in _BATCH_INFO_KEYS.items() if isinstance(document.get(key), Mapping)]
    if len(found) != 1:
        raise NotAFailureRecord("it has no DDBStreamBatchInfo or KinesisBatchInfo")
    key, kind = found[0]
    info = document[key]
    fields = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    missing = [f for f in fields if not isinstance(info.get(f), str) or not info.get(f)]
    if missing:
        raise NotAFailureRecord(f"its {key} lacks {', '.join(missing)}")
    size = info.get("batchSize")
    return BatchInfo(kind, info["streamArn"], info["shardId"], info["startSequenceNumber"],
                     info["endSequenceNumber"], size if isinstance(size, int) else None)


def _payload_records(payload: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """``(records, problem)`` of a ``payload`` value: the event's ``Records``, or why they cannot be used."""
    if payload is None:
        return None, None
    try:
        event = json.loads(payload) if isinstance(payload, str) else payload
    except ValueError as exc:
        return None, f"payload is not JSON ({exc})"
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        return None, "payload has no Records list"
    return [dict(r) for r in records], None


def unwrap_sns(document: Any) -> Any:
    """The failure record inside an SNS notification delivered to SQS (raw delivery off), else ``document``."""
    if isinstance(document, Mapping) and document.get("Type") == "Notification" and "Message" in document:
        try:
            return json.loads(document["Message"])
        except (TypeError, ValueError):
            return document
    return document


def parse_failure_record(name: str, body: bytes) -> FailureRecord:
    """Parse one object or message body.

    Raises:
        NotAFailureRecord: ``body`` is not JSON, or has no batch info.
    """
    try:
        document = unwrap_sns(json.loads(body))
    except (UnicodeDecodeError, ValueError):
        raise NotAFailureRecord("it is not JSON") from None
    if not isinstance(document, Mapping):
        raise NotAFailureRecord("it is not a JSON object")
    batch = _batch_info(document)
    records, problem = _payload_records(document.get("payload"))
    context = document.get("requestContext")
    condition = context.get("condition") if isinstance(context, Mapping) else None
    timestamp = document.get("timestamp")
    return FailureRecord(name, batch, records, problem, condition, timestamp if isinstance(timestamp, str) else None)
