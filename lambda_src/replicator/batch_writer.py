"""One-way writes: BatchWriteItem with retries of throttling and of UnprocessedItems.

BatchWriteItem takes up to 25 requests for distinct keys and has no conditions, which suits a one-way mirror:
the last state of each item simply replaces the target's. One invalid item (for example one that breaks a
target index's key type) makes DynamoDB reject the whole request, so such a request is replayed item by item
to find the culprit and apply the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .attributes import ItemKey, item_key, key_item
from .operations import Delete, Operation, Put, WriteFailure
from .retry import DEADLINE_EXCEEDED, Deadline, error_code, is_retryable, wait_before_retry

#: BatchWriteItem's limit of requests per call.
MAX_BATCH_REQUESTS = 25

# Errors that concern the whole table, so replaying item by item would only repeat them.
_TABLE_LEVEL_CODES = frozenset({"ResourceNotFoundException", "UnrecognizedClientException"})


def chunks(ops: Sequence[Operation], size: int = MAX_BATCH_REQUESTS) -> Iterator[Sequence[Operation]]:
    """``ops`` in consecutive groups of at most ``size``."""
    for start in range(0, len(ops), size):
        yield ops[start : start + size]


def _request(op: Operation) -> dict[str, Any]:
    if isinstance(op, Put):
        return {"PutRequest": {"Item": op.item}}
    return {"DeleteRequest": {"Key": key_item(op.key)}}


def _request_key(request: dict[str, Any], key_names: Sequence[str]) -> ItemKey:
    if "PutRequest" in request:
        return item_key(request["PutRequest"]["Item"], key_names)
    return item_key(request["DeleteRequest"]["Key"], key_names)


def _failure(exc: BaseException, exhausted: bool = False) -> WriteFailure:
    return WriteFailure(error_code(exc), str(exc)[:500], retries_exhausted=exhausted)


_NO_TIME = WriteFailure(DEADLINE_EXCEEDED, "not started: the invocation's deadline had passed", retries_exhausted=True)


def write_one(client: Any, table_name: str, op: Operation, deadline: Deadline) -> WriteFailure | None:
    """PutItem or DeleteItem for one operation, retrying transient errors until ``deadline``."""
    if deadline.passed():
        return _NO_TIME
    attempt = 0
    while True:
        try:
            if isinstance(op, Put):
                client.put_item(TableName=table_name, Item=op.item)
            else:
                client.delete_item(TableName=table_name, Key=key_item(op.key))
            return None
        except (ClientError, BotoCoreError) as exc:
            if not is_retryable(exc):
                return _failure(exc)
            if not wait_before_retry(deadline, attempt):
                return _failure(exc, exhausted=True)
            attempt += 1


def write_batch(
    client: Any, table_name: str, ops: Sequence[Operation], key_names: Sequence[str], deadline: Deadline
) -> dict[ItemKey, WriteFailure]:
    """Apply up to 25 operations on distinct keys; return the failures by key (empty: all applied)."""
    if len(ops) > MAX_BATCH_REQUESTS:
        raise ValueError(f"BatchWriteItem takes at most {MAX_BATCH_REQUESTS} requests, got {len(ops)}")
    pending: dict[ItemKey, Operation] = {op.key: op for op in ops}
    if len(pending) != len(ops):
        raise ValueError("BatchWriteItem rejects two requests for the same key")
    if deadline.passed():
        return {key: _NO_TIME for key in pending}
    attempt = 0
    while pending:
        try:
            response = client.batch_write_item(RequestItems={table_name: [_request(op) for op in pending.values()]})
        except (ClientError, BotoCoreError) as exc:
            if is_retryable(exc):
                if not wait_before_retry(deadline, attempt):
                    return {key: _failure(exc, exhausted=True) for key in pending}
                attempt += 1
                continue
            if error_code(exc) in _TABLE_LEVEL_CODES or len(pending) == 1:
                return {key: _failure(exc) for key in pending}
            return _one_by_one(client, table_name, pending.values(), deadline)
        # One table per request: its unprocessed items are the only entry, however DynamoDB spells its name.
        unprocessed = next(iter(response.get("UnprocessedItems", {}).values()), [])
        if not unprocessed:
            return {}
        pending = {k: pending[k] for k in (_request_key(r, key_names) for r in unprocessed)}
        if not wait_before_retry(deadline, attempt):
            message = "BatchWriteItem left these items unprocessed until the invocation's deadline"
            return {key: WriteFailure("UnprocessedItems", message, retries_exhausted=True) for key in pending}
        attempt += 1
    return {}


def _one_by_one(
    client: Any, table_name: str, ops: Iterable[Operation], deadline: Deadline
) -> dict[ItemKey, WriteFailure]:
    failures: dict[ItemKey, WriteFailure] = {}
    for op in ops:
        failure = write_one(client, table_name, op, deadline)
        if failure is not None:
            failures[op.key] = failure
    return failures

