"""Settling a Kinesis tie from the source: one source read per item and batch, made only once the tick is
surely committed (issue 10 review, findings 2 and 7).

An in-memory stand-in for DynamoDB (the same two condition expressions as test_ordered_ties_exhaustive.py)
counts the source reads and records the function's clock at each; the clock and sleep are injected, so no
test waits and none asserts on real time.
"""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from replicator.config import load_config
from replicator.ordered_one_way import SETTLED_FROM_SOURCE, OrderedOneWayReplication
from replicator.records import Change
from replicator.retry import Deadline
from replicator.telemetry import InvocationMetrics

KEY = (("pk", "S", "k"),)
TARGETS = ["dst1", "dst2", "dst3"]
SETTLE = "attribute_not_exists(#t) OR #t < :t OR (#t = :t AND (attribute_not_exists(#s) OR #s <> :s))"
WRITE = "attribute_not_exists(#t) OR #t < :t"
CONFIG = load_config({
    "REPLICATION_MODE": "ONE_WAY",
    "REPLICATION_CHANGE_SOURCE": "KINESIS",
    "REPLICATION_SOURCE": json.dumps({"tableName": "src", "region": "us-east-1", "account": "111111111111"}),
    "REPLICATION_TARGETS": json.dumps(
        [{"tableName": name, "region": "eu-west-1", "account": "111111111111"} for name in TARGETS]
    ),
    "REPLICATION_KEY": json.dumps({"partitionKey": "pk"}),
})
T_US = 1_700_000_000_000_000  # the tie's change time, epoch microseconds


def image(state: str | None) -> dict[str, Any] | None:
    return None if state is None else {"pk": {"S": "k"}, "v": {"S": state}}


class Clock:
    """The function's wall clock (epoch seconds); ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class StandIn:
    def __init__(self, source: str | None, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self.targets: dict[str, dict[str, Any] | None] = {name: None for name in TARGETS}
        self.reads_at: list[float] = []

    def for_table(self, table: Any) -> "StandIn":
        return self

    def get_item(self, TableName: str, Key: Any, ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
        assert TableName == "src" and ConsistentRead
        self.reads_at.append(self.clock.now)
        item = image(self.source)
        return {} if item is None else {"Item": item}

    def put_item(self, TableName: str, Item: dict[str, Any], ConditionExpression: str,  # noqa: N803
                 ExpressionAttributeNames: Any, ExpressionAttributeValues: Any,
                 ReturnValuesOnConditionCheckFailure: str | None = None) -> None:
        assert ConditionExpression in (WRITE, SETTLE), ConditionExpression
        stored, t = self.targets[TableName], int(ExpressionAttributeValues[":t"]["N"])
        allowed = stored is None or int(stored["_rep_changedAt"]["N"]) < t
        if not allowed and ConditionExpression == SETTLE and int(stored["_rep_changedAt"]["N"]) == t:
            allowed = stored.get("_rep_state", {}).get("S") != ExpressionAttributeValues[":s"]["S"]
        if not allowed:
            response: dict[str, Any] = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "x"}}
            if ReturnValuesOnConditionCheckFailure == "ALL_OLD":
                response["Item"] = dict(stored or {})
            raise ClientError(response, "PutItem")  # type: ignore[arg-type]
        self.targets[TableName] = dict(Item)


def change(index: int, old: str | None, new: str | None) -> Change:
    event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    return Change(index, str(100 + index), event, KEY, image(new), image(old), None, False, T_US)


def replicate(stand_in: StandIn, clock: Clock, changes: list[Change], deadline: Deadline | None = None):
    replication = OrderedOneWayReplication(CONFIG, stand_in, logging.getLogger("settle"))  # type: ignore[arg-type]
    replication.clock, replication.sleep = clock.time, clock.sleep
    metrics = InvocationMetrics("src", io.StringIO())
    with ThreadPoolExecutor(4) as pool:
        plan = replication.plan(KEY, changes)
        failures = replication.apply([plan], pool, deadline or Deadline(float("inf")), metrics)
    return failures, metrics


# A cycle within one tick (A->B->A) cannot be ordered from the records: the item is settled from the source.
CYCLE = [change(0, "A", "B"), change(1, "B", "A")]


def test_a_tie_is_settled_with_one_source_read_for_every_target():
    clock = Clock(T_US / 1e6 + 60)
    stand_in = StandIn("A", clock)
    failures, metrics = replicate(stand_in, clock, CYCLE)
    assert not failures
    assert len(stand_in.reads_at) == 1  # not one per target
    assert metrics.conflicts[SETTLED_FROM_SOURCE] == len(TARGETS)
    assert all(item is not None and item["v"] == {"S": "A"} for item in stand_in.targets.values())


def test_the_source_is_read_only_after_the_tick_and_a_skew_margin_have_passed():
    """Premise: every change stamped t is committed before the source is read. A function whose clock is
    still within t's millisecond (or a second after it: clocks differ) waits before reading."""
    clock = Clock(T_US / 1e6)  # the function's clock reads the tie's own time
    stand_in = StandIn("A", clock)
    failures, _ = replicate(stand_in, clock, CYCLE)
    assert not failures
    (read_at,) = stand_in.reads_at
    assert read_at >= T_US / 1e6 + 0.001 + 1.0
    assert clock.slept  # it waited (by the injected sleep) instead of reading at once


def test_a_clock_long_past_the_tick_reads_at_once():
    clock = Clock(T_US / 1e6 + 5)
    stand_in = StandIn("A", clock)
    replicate(stand_in, clock, CYCLE)
    assert stand_in.reads_at == [T_US / 1e6 + 5] and not clock.slept


def test_no_time_left_to_wait_reports_the_item_for_redelivery_without_reading():
    clock = Clock(T_US / 1e6)
    stand_in = StandIn("A", clock)
    failures, _ = replicate(stand_in, clock, CYCLE, Deadline.from_remaining_ms(200, margin_s=0))
    assert not stand_in.reads_at and not clock.slept
    codes = {(f.failure.code, f.failure.retries_exhausted) for f in failures[KEY]}
    assert codes == {("DeadlineExceeded", True)}
