"""Failure records for the redrive tests, built from REAL stream records of DynamoDB Local tables."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from cdk_replication.local import DEFAULT_ACCOUNT, DynamoDBLocal
from cdk_replication.local.stream_records import aws_stream_arn, list_shards, read_all_records, to_lambda_record

from .helpers import REGION


def stream_records(local: DynamoDBLocal, ddb: Any, table: str) -> tuple[list[dict[str, Any]], str, str]:
    """Every record of ``table``'s stream in Lambda's shape, its shard id and the stream ARN as AWS writes it."""
    streams = local.client("dynamodbstreams", region=REGION)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    aws_arn = aws_stream_arn(arn, REGION, DEFAULT_ACCOUNT)
    (shard,) = list_shards(streams, arn)
    return [to_lambda_record(raw, REGION, aws_arn) for raw in read_all_records(streams, arn)], shard["ShardId"], aws_arn


def failure_record(records: list[dict[str, Any]], shard_id: str, stream_arn: str, *, payload: bool = True,
                   start: str | None = None, end: str | None = None,
                   batch_info_key: str = "DDBStreamBatchInfo") -> dict[str, Any]:
    """Lambda's on-failure record for the batch ``records`` (contract section 1); without payload as SQS gets it."""
    if batch_info_key == "KinesisBatchInfo":
        sequence = [r["kinesis"]["sequenceNumber"] for r in records] or [""]
    else:
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records] or [""]
    document: dict[str, Any] = {
        "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetryAttemptsExhausted",
                           "functionArn": f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:replicator",
                           "approximateInvokeCount": 3},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-30T06:00:00.000Z",
        batch_info_key: {"shardId": shard_id, "startSequenceNumber": start or sequence[0],
                         "endSequenceNumber": end or sequence[-1],
                         "approximateArrivalOfFirstRecord": "2026-11-30T05:59:00Z",
                         "approximateArrivalOfLastRecord": "2026-11-30T05:59:01Z",
                         "batchSize": len(records), "streamArn": stream_arn},
    }
    if payload:
        document["payload"] = json.dumps({"Records": records})
    return document


def object_key(shard_id: str) -> str:
    """A key as Lambda names an S3 failure object: aws/lambda/<mapping>/<shard>/YYYY/MM/DD/<time>-<uuid>."""
    return f"aws/lambda/{uuid.uuid4()}/{shard_id}/2026/11/30/2026-11-30T06.00.00-{uuid.uuid4()}"


def write_record(folder: Path, document: dict[str, Any], shard_id: str, key: str | None = None) -> str:
    """Store ``document`` in a folder laid out like a bucket (at ``key``, default a new one); returns its key."""
    key = key or object_key(shard_id)
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return key


def markers(folder: Path) -> list[str]:
    """The keys of the redrive markers in ``folder``."""
    root = folder / "cdk-replication" / "redriven"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []
