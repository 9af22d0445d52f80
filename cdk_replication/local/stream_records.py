"""Turn DynamoDB Local stream records into the records Lambda delivers on AWS.

boto3's ``dynamodbstreams.get_records`` answer differs from a Lambda event in three ways: binary values are
``bytes`` (Lambda's JSON event carries base64 text), ``ApproximateCreationDateTime`` is a ``datetime`` (Lambda
sends epoch seconds), and DynamoDB Local writes an empty map as ``{}`` where AWS writes ``{"M": {}}``. Its
ARNs also name region ``ddblocal`` and account ``000000000000``. The functions here undo all of that, so the
replicator only ever sees what AWS sends.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

_LOCAL_ARN = re.compile(r"^arn:(?P<partition>[^:]+):dynamodb:[^:]*:[^:]*:(?P<rest>table/.+)$")


def aws_stream_arn(local_arn: str, region: str, account: str) -> str:
    """The ARN AWS would give a stream: DynamoDB Local's ARN with the real region and account."""
    m = _LOCAL_ARN.match(local_arn)
    if not m:
        raise ValueError(f"not a DynamoDB stream ARN: {local_arn!r}")
    return f"arn:{m['partition']}:dynamodb:{region}:{account}:{m['rest']}"


def to_json_attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value in the JSON form of a Lambda event (base64 binary, ``{"M": {}}`` for empty maps)."""
    if not value:
        return {"M": {}}
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in inner]}
    if kind == "M":
        return {"M": to_json_image(inner)}
    if kind == "L":
        return {"L": [to_json_attribute_value(v) for v in inner]}
    return {kind: inner}


def to_json_image(image: dict[str, Any]) -> dict[str, Any]:
    """A whole item image (``Keys``, ``NewImage``, ``OldImage``) in Lambda's JSON form."""
    return {name: to_json_attribute_value(v) for name, v in image.items()}


def to_json_user_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """``userIdentity`` as events carry it (``type``, ``principalId``); boto3 says ``Type``, ``PrincipalId``."""
    return {"type": identity.get("Type", identity.get("type")),
            "principalId": identity.get("PrincipalId", identity.get("principalId"))}


#: ``userIdentity`` of a delete made by DynamoDB's TTL process, as a Lambda record carries it.
TTL_USER_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

#: What DynamoDB Local writes as ``eventName`` for its own TTL deletes (its SDK model predates them).
_LOCAL_TTL_EVENT_NAME = "UNKNOWN_TO_SDK_VERSION"


def event_name_and_identity(raw: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """``(eventName, userIdentity)`` of a boto3 stream record as AWS writes them.

    DynamoDB Local's TTL process deletes expired items too, but its record says ``UNKNOWN_TO_SDK_VERSION`` and
    carries no ``userIdentity``; AWS writes ``REMOVE`` with the DynamoDB service as the identity. Delivering the
    local spelling would teach the replicator a quirk AWS never shows (and fail every batch holding one).
    """
    ddb = raw.get("dynamodb", {})
    if raw.get("eventName") == _LOCAL_TTL_EVENT_NAME and "OldImage" in ddb and "NewImage" not in ddb:
        return "REMOVE", dict(TTL_USER_IDENTITY)
    identity = raw.get("userIdentity")
    return raw["eventName"], (to_json_user_identity(identity) if identity else None)


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return float(int(value.timestamp()))
    return float(value)


def to_lambda_record(raw: dict[str, Any], region: str, stream_arn: str) -> dict[str, Any]:
    """One record of a Lambda DynamoDB Streams event, built from a boto3 ``get_records`` record.

    Args:
        raw: a record as returned by the ``dynamodbstreams`` client of boto3.
        region: the table's real region (DynamoDB Local says ``ddblocal``).
        stream_arn: the stream's ARN as AWS would write it (see :func:`aws_stream_arn`).
    """
    ddb = raw["dynamodb"]
    body: dict[str, Any] = {"ApproximateCreationDateTime": _epoch_seconds(ddb["ApproximateCreationDateTime"])}
    for image in ("Keys", "NewImage", "OldImage"):
        if image in ddb:
            body[image] = to_json_image(ddb[image])
    body["SequenceNumber"] = ddb["SequenceNumber"]
    body["SizeBytes"] = ddb["SizeBytes"]
    body["StreamViewType"] = ddb["StreamViewType"]
    event_name, identity = event_name_and_identity(raw)
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": event_name,
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }
    if identity is not None:  # TTL deletions are marked as made by the DynamoDB service
        record["userIdentity"] = identity
    return record


def shards_in_lineage_order(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shards ordered so that every parent comes before its children (Lambda's processing order).

    A shard whose parent is no longer listed (trimmed after 24 h) counts as a root.
    """
    by_id = {s["ShardId"]: s for s in shards}
    ordered: list[dict[str, Any]] = []
    done: set[str] = set()

    def visit(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in done:
            return
        parent = shard.get("ParentShardId")
        if parent in by_id:
            visit(by_id[parent])
        done.add(shard["ShardId"])
        ordered.append(shard)

    for shard in shards:
        visit(shard)
    return ordered


def list_shards(streams_client: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every shard of a stream (``DescribeStream`` pages through ``ExclusiveStartShardId``)."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        desc = streams_client.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs["ExclusiveStartShardId"] = last


def read_all_records(streams_client: Any, stream_arn: str, limit: int = 1000) -> Iterator[dict[str, Any]]:
    """Every record now in the stream, shard by shard in lineage order, each shard from TRIM_HORIZON.

    Raw boto3 records; pass them through :func:`to_lambda_record`. Stops at the end of what each shard holds
    now (an open shard's iterator keeps answering empty pages; two empty pages in a row end it).
    """
    for shard in shards_in_lineage_order(list_shards(streams_client, stream_arn)):
        iterator = streams_client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        empty_pages = 0
        while iterator and empty_pages < 2:
            page = streams_client.get_records(ShardIterator=iterator, Limit=limit)
            records = page.get("Records", [])
            empty_pages = 0 if records else empty_pages + 1
            yield from records
            iterator = page.get("NextShardIterator")
