"""Tables and workloads on DynamoDB Local, and the real stream records they produce.

A workload is N writes over K items, written to a source table whose stream is NEW_AND_OLD_IMAGES, in rounds:
round r writes every item once (version r), so each item's writes reach the stream in order. ``K == N`` is
the *spread* shape (every record a new item: nothing to coalesce); ``K << N`` is the *hot* shape (few items,
many updates each). *mixed* (:func:`write_mixed_workload`) is issue 17's black box: 3 writes per key, the later
ones updates, 10% of all writes deletes followed by a re-create, ~200-byte items. The stream is then read from TRIM_HORIZON with ``read_all_records`` and every record
converted with ``to_lambda_record`` into exactly the record Lambda would deliver.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdk_replication.local import DynamoDBLocal
from cdk_replication.local.stream_records import aws_stream_arn, read_all_records, to_lambda_record

ACCOUNT = "111111111111"
SOURCE_REGION = "us-east-1"
REPLICA_REGION = "eu-west-1"
#: Conflict attribute of every item (REPLICATION_CONFLICT_ATTRIBUTE's default).
CONFLICT_ATTRIBUTE = "updatedAt"
#: Epoch milliseconds of the first write; every later write of the workload gets a larger updatedAt.
BASE_TIMESTAMP_MS = 1_790_000_000_000
#: REPLICATION_METADATA_PREFIX's default: attributes the replicator adds to replica items, not the user's.
METADATA_PREFIX = "_rep_"
#: Kinesis sequence numbers are decimal strings of up to 56 digits; these start like AWS's.
FIRST_KINESIS_SEQUENCE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000


@dataclass(frozen=True)
class TableSpec:
    name: str
    region: str
    account: str = ACCOUNT
    stream_arn: str | None = None

    def ref(self) -> dict[str, str]:
        return {"tableName": self.name, "region": self.region, "account": self.account}


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def create_table(ddb: DynamoDBLocal, prefix: str, region: str, stream: bool) -> TableSpec:
    """A table with string key ``pk``, on-demand, optionally with a NEW_AND_OLD_IMAGES stream."""
    client = ddb.client(region=region, account=ACCOUNT)
    name = unique(prefix)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    client.create_table(**kwargs)
    arn = client.describe_table(TableName=name)["Table"].get("LatestStreamArn") if stream else None
    return TableSpec(name, region, ACCOUNT, arn)


def delete_table(ddb: DynamoDBLocal, table: TableSpec) -> None:
    """Free DynamoDB Local's memory once a run no longer needs the table."""
    try:
        ddb.client(region=table.region, account=table.account).delete_table(TableName=table.name)
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def make_item(index: int, version: int, updated_at: int, payload_bytes: int) -> dict[str, Any]:
    """One item in wire form: a typical application item of about ``payload_bytes`` + 150 bytes."""
    return {
        "pk": {"S": f"item-{index:07d}"},
        CONFLICT_ATTRIBUTE: {"N": str(updated_at)},
        "version": {"N": str(version)},
        "status": {"S": ("NEW", "PAID", "SHIPPED", "DELIVERED")[version % 4]},
        "amount": {"N": f"{(index * 7919 + version) % 100000}.{version % 100:02d}"},
        "customer": {"M": {"id": {"S": f"c-{index % 9973}"}, "tier": {"S": "gold"}, "score": {"N": str(index % 97)}}},
        "tags": {"SS": ["a", "b", f"t{version % 10}"]},
        "payload": {"S": ("x" * payload_bytes)},
    }


def write_workload(
    ddb: DynamoDBLocal,
    table: TableSpec,
    records: int,
    items: int,
    payload_bytes: int = 200,
    threads: int = 8,
) -> None:
    """Write ``records`` writes over ``items`` items, round by round (see the module docstring)."""
    client = ddb.client(region=table.region, account=table.account, max_pool_connections=threads)
    written = 0
    version = 0
    with ThreadPoolExecutor(threads) as pool:
        while written < records:
            count = min(items, records - written)
            batch_items = [
                make_item(i, version, BASE_TIMESTAMP_MS + written + i, payload_bytes) for i in range(count)
            ]
            chunks = [batch_items[s : s + 25] for s in range(0, count, 25)]
            list(pool.map(lambda chunk: _batch_write(client, table.name, chunk), chunks))
            written += count
            version += 1


#: *mixed*: share of all writes that are deletes (each deleted item is re-created the round after).
MIXED_DELETE_SHARE = 0.10
#: *mixed*: payload of an item, giving ~200-byte items (the black-box measurement of issue 17).
MIXED_PAYLOAD_BYTES = 40


def mixed_deletes(round_no: int, items: int, rounds: int, delete_share: float = MIXED_DELETE_SHARE) -> range:
    """Item indexes deleted in ``round_no`` of the *mixed* workload: round 0 creates every item; each later
    round deletes a window of ``delete_share * rounds / (rounds - 1)`` of the items (so deletes are
    ``delete_share`` of all writes), the window moving on by its own width each round, so an item deleted in
    one round is re-created (a PutItem of a new version) in the next."""
    if round_no == 0 or rounds < 2:
        return range(0)
    width = min(items, round(items * delete_share * rounds / (rounds - 1)))
    start = (items - width * round_no) % items
    return range(start, start + width)


def write_mixed_workload(
    ddb: DynamoDBLocal,
    table: TableSpec,
    records: int,
    items: int,
    payload_bytes: int = MIXED_PAYLOAD_BYTES,
    threads: int = 8,
    delete_share: float = MIXED_DELETE_SHARE,
) -> None:
    """The *mixed* workload (issue 17's black box): ``records`` application writes over ``items`` keys in
    rounds (round r writes every key once, ``updatedAt`` increasing with every write); round 0 creates every
    item, later rounds update existing items, and ``delete_share`` (default ``MIXED_DELETE_SHARE``) of all
    writes are deletes whose items come back in the next round (a create after a delete). ~200-byte items."""
    client = ddb.client(region=table.region, account=table.account, max_pool_connections=threads)
    rounds = -(-records // items)
    written = 0
    with ThreadPoolExecutor(threads) as pool:
        for version in range(rounds):
            count = min(items, records - written)
            deleted = set(mixed_deletes(version, items, rounds, delete_share))
            requests = [
                {"DeleteRequest": {"Key": {"pk": {"S": f"item-{i:07d}"}}}} if i in deleted
                else {"PutRequest": {"Item": make_item(i, version, BASE_TIMESTAMP_MS + written + i, payload_bytes)}}
                for i in range(count)
            ]
            chunks = [requests[s : s + 25] for s in range(0, count, 25)]
            list(pool.map(lambda chunk: _batch_requests(client, table.name, chunk), chunks))
            written += count


def _batch_write(client: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    _batch_requests(client, table, [{"PutRequest": {"Item": item}} for item in items])


def _batch_requests(client: Any, table: str, requests: Sequence[dict[str, Any]]) -> None:
    request: dict[str, Any] = {table: list(requests)}
    while request:
        response = client.batch_write_item(RequestItems=request)
        request = response.get("UnprocessedItems") or {}


def read_stream(ddb: DynamoDBLocal, table: TableSpec) -> list[dict[str, Any]]:
    """Every record of ``table``'s stream, as Lambda delivers it."""
    assert table.stream_arn is not None
    streams = ddb.client("dynamodbstreams", region=table.region, account=table.account)
    arn = aws_stream_arn(table.stream_arn, table.region, table.account)
    return [to_lambda_record(raw, table.region, arn) for raw in read_all_records(streams, table.stream_arn)]


def kinesis_records(records: Sequence[dict[str, Any]], table: TableSpec) -> list[dict[str, Any]]:
    """The same changes as Lambda records of a Kinesis data stream fed by ``table`` (Kinesis Data Streams for
    DynamoDB, as ``KinesisStreamingDestination.kinesis_record`` in cdk_replication/local/kinesis_bridge.py writes
    them): each stream record without SequenceNumber and StreamViewType, ApproximateCreationDateTime in epoch
    microseconds strictly increasing in stream order, base64 JSON in ``kinesis.data``, Kinesis sequence numbers
    in delivery order (no reordering or duplicates: every record is delivered once, in order)."""
    out = []
    for i, record in enumerate(records):
        body = {k: v for k, v in record["dynamodb"].items() if k not in ("SequenceNumber", "StreamViewType")}
        body["ApproximateCreationDateTime"] = BASE_TIMESTAMP_MS * 1000 + i
        data = {
            "awsRegion": table.region,
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "userIdentity": record.get("userIdentity"),
            "recordFormat": "application/json",
            "tableName": table.name,
            "dynamodb": body,
            "eventSource": "aws:dynamodb",
        }
        sequence = str(FIRST_KINESIS_SEQUENCE + i)
        out.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": hashlib.md5(json.dumps(body["Keys"], sort_keys=True).encode()).hexdigest(),
                "sequenceNumber": sequence,
                "data": base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode(),
                "approximateArrivalTimestamp": BASE_TIMESTAMP_MS / 1000 + i / 1e6,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{sequence}",
            "eventName": "aws:kinesis:record",
            "awsRegion": table.region,
            "eventSourceARN": f"arn:aws:kinesis:{table.region}:{table.account}:stream/{table.name}-changes",
        })
    return out


def batches(records: Sequence[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive batches of at most ``batch_size`` records, as one shard's mapping delivers them."""
    for start in range(0, len(records), batch_size):
        yield list(records[start : start + batch_size])


def write_events(path: Path, records: Sequence[dict[str, Any]], batch_size: int, limit: int | None = None) -> int:
    """One Lambda event (``{"Records": [...]}``) per line; returns the number of records written.

    ``limit`` keeps only the first ``limit`` records (the baselines' sample)."""
    chosen = records if limit is None else records[:limit]
    with path.open("w") as out:
        for batch in batches(chosen, batch_size):
            out.write(json.dumps({"Records": batch}, separators=(",", ":")) + "\n")
    return len(chosen)


def scan_all(ddb: DynamoDBLocal, table: TableSpec) -> list[dict[str, Any]]:
    client = ddb.client(region=table.region, account=table.account)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table.name}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def final_states(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """pk -> new image of the last record of each item (``None`` after a delete): what a copy must hold."""
    state: dict[str, dict[str, Any] | None] = {}
    for record in records:
        pk = record["dynamodb"]["Keys"]["pk"]["S"]
        state[pk] = None if record["eventName"] == "REMOVE" else record["dynamodb"]["NewImage"]
    return state


def _canonical(value: Any) -> Any:
    """A wire-form value with its sets sorted (a set's order is not part of it)."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def check_copy(ddb: DynamoDBLocal, target: TableSpec, expected: dict[str, dict[str, Any] | None]) -> str | None:
    """``None`` when every item of ``target`` has exactly the user attributes (all but the replicator's
    ``_rep_`` metadata) of the item's last new image and no other item is there (a tombstone counts as no
    item), else what differs."""
    held = {
        item["pk"]["S"]: _canonical({k: v for k, v in item.items() if not k.startswith(METADATA_PREFIX)})
        for item in scan_all(ddb, target)
        if METADATA_PREFIX + "deleted" not in item
    }
    want = {k: _canonical(v) for k, v in expected.items() if v is not None}
    if held == want:
        return None
    missing = len(set(want) - set(held))
    extra = len(set(held) - set(want))
    stale = sum(1 for k in set(want) & set(held) if want[k] != held[k])
    return f"{missing} missing, {extra} extra, {stale} stale of {len(want)}"
