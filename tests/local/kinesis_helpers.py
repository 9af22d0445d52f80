"""Helpers for the Kinesis tests: streams in the local Kinesis, bridges, reading a stream back."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from cdk_replication.local import KinesisStreamingDestination

from esm_helpers import ACCOUNT, REGION

_names = itertools.count()


def kinesis_stream(local_kinesis, shards: int = 1) -> tuple[Any, str, str]:
    """A new Kinesis stream: (client, name, ARN)."""
    name = f"kds-{next(_names)}-{uuid.uuid4().hex[:6]}"
    arn = local_kinesis.create_stream(name, REGION, ACCOUNT, shard_count=shards)
    return local_kinesis.client(REGION, ACCOUNT), name, arn


def bridge(ddb_local, kinesis_client, table: str, stream_arn: str, kinesis_arn: str,
           **kwargs: Any) -> KinesisStreamingDestination:
    return KinesisStreamingDestination(
        table, stream_arn,
        streams_client=ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT),
        kinesis_stream_arn=kinesis_arn, kinesis_client=kinesis_client, region=REGION, account=ACCOUNT, **kwargs)


def read_stream(client, name: str) -> list[dict[str, Any]]:
    """Every record of every shard: ``{"shard", "seq", "partition_key", "data" (parsed JSON)}``, shard by
    shard, each in sequence order."""
    out = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            for r in page["Records"]:
                out.append({"shard": shard["ShardId"], "seq": r["SequenceNumber"], "partition_key": r["PartitionKey"],
                            "data": json.loads(r["Data"].decode("utf-8"))})
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def put_raw(client, name: str, *payloads: str, partition_key: str = "pk") -> list[str]:
    """PutRecord each payload (UTF-8); returns the sequence numbers."""
    return [client.put_record(StreamName=name, Data=p.encode(), PartitionKey=partition_key)["SequenceNumber"]
            for p in payloads]
