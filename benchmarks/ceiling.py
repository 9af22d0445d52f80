"""The ceiling: how fast DynamoDB Local on this machine accepts concurrent writes, with no added round trip.

``python -m benchmarks.ceiling <spec.json>`` runs in its own process (like a replicator container) and, for
each thread count, writes ``items`` fresh items of the workload's shape to a fresh table in the replica
region as fast as the threads can:

* ``batch``: unconditional BatchWriteItem of 25 items (the one-way replicator's request);
* ``conditional``: PutItem with the multi-active condition ``attribute_not_exists(#k) OR #c < :v`` and
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD``, the item stamped with the replicator's metadata attributes
  (the multi-active replicator's request);
* ``transact`` (for comparison only, not what the replicator sends): TransactWriteItems of 25 such
  conditional puts, i.e. the conditional writes of 25 items in one request.

Requests are built before the clock starts, so the client's cost is only boto3's serialization and HTTP.
DynamoDB Local, this client and everything else share the machine's cores: the best rate over the thread
counts bounds what any replicator written against boto3 can reach here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from benchmarks.workload import CONFLICT_ATTRIBUTE, make_item


def _client(spec: dict[str, Any], threads: int) -> Any:
    return boto3.session.Session().client(
        "dynamodb",
        region_name=spec["region"],
        config=Config(max_pool_connections=threads, retries={"mode": "standard", "total_max_attempts": 10}),
    )


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _requests(kind: str, table: str, items: int, payload_bytes: int) -> list[tuple[str, dict[str, Any]]]:
    built = [make_item(i, 0, 1_790_000_000_000 + i, payload_bytes) for i in range(items)]
    if kind == "batch":
        return [
            ("batch_write_item", {"RequestItems": {table: [{"PutRequest": {"Item": it}} for it in built[s : s + 25]]}})
            for s in range(0, items, 25)
        ]
    out = []
    if kind == "transact":
        for start in range(0, items, 25):
            ops = []
            for item in built[start : start + 25]:
                item = dict(item, _rep_origin={"S": "us-east-1"}, _rep_marker={"S": "x" * 22})
                ops.append({"Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#k) OR #c < :v",
                    "ExpressionAttributeNames": {"#k": "pk", "#c": CONFLICT_ATTRIBUTE},
                    "ExpressionAttributeValues": {":v": item[CONFLICT_ATTRIBUTE]},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }})
            out.append(("transact_write_items", {"TransactItems": ops}))
        return out
    for item in built:
        item = dict(item)
        item["_rep_origin"] = {"S": "us-east-1"}
        item["_rep_marker"] = {"S": "x" * 22}
        out.append(
            (
                "put_item",
                {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#k) OR #c < :v",
                    "ExpressionAttributeNames": {"#k": "pk", "#c": CONFLICT_ATTRIBUTE},
                    "ExpressionAttributeValues": {":v": item[CONFLICT_ATTRIBUTE]},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
            )
        )
    return out


def measure(spec: dict[str, Any], kind: str, threads: int) -> dict[str, Any]:
    client = _client(spec, threads)
    name = f"bench-ceiling-{kind}-{threads}-{int(time.time() * 1000)}"
    _create_table(client, name)
    try:
        requests = _requests(kind, name, spec["items"], spec["payload_bytes"])
        per_request = 1 if kind == "conditional" else 25
        # Warm the connection pool outside the clock (the replicator's containers are warm too).
        warm = _requests(kind, name + "-w", threads * per_request, spec["payload_bytes"])
        _create_table(client, name + "-w")
        _run(client, warm, threads)
        client.delete_table(TableName=name + "-w")
        load = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        errors = _run(client, requests, threads)
        seconds = time.perf_counter() - started
        count = client.describe_table(TableName=name)["Table"].get("ItemCount")
        return {
            "kind": kind,
            "threads": threads,
            "items": spec["items"],
            "seconds": seconds,
            "items_per_s": spec["items"] / seconds,
            "errors": errors,
            "item_count": count,
            "load": load,
        }
    finally:
        client.delete_table(TableName=name)


def _run(client: Any, requests: list[tuple[str, dict[str, Any]]], threads: int) -> int:
    lock = threading.Lock()
    position = [0]
    errors = [0]

    def work() -> None:
        while True:
            with lock:
                i = position[0]
                position[0] += 1
            if i >= len(requests):
                return
            method, kwargs = requests[i]
            try:
                response = getattr(client, method)(**kwargs)
                pending = response.get("UnprocessedItems")
                while pending:
                    pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
            except Exception:  # noqa: BLE001 - counted; a ceiling run must not stop on one error
                with lock:
                    errors[0] += 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors[0]


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    results = [measure(spec, kind, threads) for kind in spec["kinds"] for threads in spec["threads"]]
    Path(spec["result_file"]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
