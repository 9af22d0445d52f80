"""Helpers shared by the command-line tests (imported relatively, so the folder works from any rootdir)."""

from __future__ import annotations

from typing import Any

#: The region the tests' DynamoDB Local clients and commands use.
REGION = "us-east-1"


def scan_all(ddb: Any, table: str) -> dict[Any, dict[str, Any]]:
    """Every item of ``table`` by its ``pk`` value (and ``sk`` when present), consistently read."""
    items: dict[Any, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            key = tuple(next(iter(item[k].values())) for k in ("pk", "sk") if k in item)
            items[key] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def put_many(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Batch-write ``items`` (25 per request, retrying unprocessed ones)."""
    for i in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
