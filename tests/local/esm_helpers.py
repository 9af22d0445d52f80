"""Helpers for the event source mapping tests: stream tables, a scripted in-process function, a fake clock."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.local import InvocationResult

REGION, ACCOUNT = "us-west-2", "123456789012"
_names = itertools.count()


def stream_table(ddb_local, prefix: str = "esm") -> tuple[Any, str, str]:
    """A new table with a NEW_AND_OLD_IMAGES stream: (client, table name, local stream ARN)."""
    client = ddb_local.client(region=REGION, account=ACCOUNT)
    name = f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return client, name, client.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def put(client, table: str, *keys: str) -> None:
    for key in keys:
        client.put_item(TableName=table, Item={"pk": {"S": key}})


def keys_of(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]


@dataclass
class ScriptedFunction:
    """An in-process stand-in for a function: records every event and answers with ``behaviour(event)``.

    ``behaviour`` returns a payload, or raises to produce a function error.
    """

    behaviour: Callable[[dict[str, Any]], Any] = lambda event: None
    arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:scripted"
    events: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        self.events.append(event)
        request_id = str(uuid.uuid4())
        try:
            payload = self.behaviour(event)
        except Exception as exc:  # noqa: BLE001 - the test's way of making a function error
            return InvocationResult(request_id, error_type=type(exc).__name__, error_message=str(exc))
        return InvocationResult(request_id, payload)

    @property
    def batches(self) -> list[list[str]]:
        return [keys_of(e) for e in self.events]


class FakeClock:
    """A wall clock that starts now and moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
