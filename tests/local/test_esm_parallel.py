"""ParallelizationFactor in the local event source mapping: up to ``factor`` batches of one shard in flight at
once, one per lane (records go to a lane by a stable hash of their item key), each key's records in order and
never in two batches at once, the checkpoint never past an unfinished record, and retries, bisection, partial
batch responses and on-failure records per lane batch.

Most tests drive the engine over an in-memory stream (no DynamoDB Local): cheap and exactly repeatable.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest

from cdk_replication.local import InvocationResult
from cdk_replication.local.event_source_mapping import (
    EventSourceMapping,
    MappingSettings,
    ShardInfo,
    SourceRecord,
    batch_info,
    lane_of,
)
from cdk_replication.local.queue import LocalQueue

from esm_helpers import ACCOUNT, REGION, ScriptedFunction

ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t/stream/2026-01-01T00:00:00.000"


class MemoryStream:
    """One open shard of DynamoDB-shaped records ``(key, version)``; sequence numbers are positions."""

    event_source_arn = ARN
    batch_info_key = "DDBStreamBatchInfo"

    def __init__(self, records: list[tuple[str, int]]) -> None:
        self.records = list(records)

    def shards(self) -> list[ShardInfo]:
        return [ShardInfo("shard-0")]

    def iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str:
        return str(len(self.records)) if kind == "LATEST" else str(int(sequence_number or 0))

    def read(self, shard_id: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        start = int(iterator)
        page = self.records[start:start + limit]
        return [{"key": k, "v": v, "seq": f"{start + i + 1:021d}"} for i, (k, v) in enumerate(page)], \
            str(start + len(page))

    def to_record(self, raw: dict[str, Any], shard_id: str, now: float) -> SourceRecord:
        record = {"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": raw["key"]}},
                                                      "NewImage": {"v": {"N": str(raw["v"])}},
                                                      "SequenceNumber": raw["seq"]}}
        return SourceRecord(record, raw["seq"], now)

    def item_key(self, identifier: Any) -> str | None:
        return identifier if isinstance(identifier, str) and identifier else None

    def batch_info(self, shard_id: str, first: SourceRecord, last: SourceRecord, size: int) -> dict[str, Any]:
        return batch_info(shard_id, first, last, size, ARN, millis=False)


class ConcurrentFunction(ScriptedFunction):
    """A ScriptedFunction safe to invoke from several lanes at once; it fails the test's expectations if two
    invocations in flight ever hold the same key."""

    def __init__(self, behaviour=lambda event: None, hold_s: float = 0.0) -> None:
        super().__init__(behaviour)
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []
        self.hold_s = hold_s
        self.most_at_once = 0
        self.running = 0

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        keys = {_key(r) for r in event["Records"]}
        with self.lock:
            self.overlaps.extend(sorted(keys & self.in_flight))
            self.in_flight |= keys
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.hold_s)  # widens the window in which an overlap would show
            with self.lock:
                self.events.append(event)
            return _answer(self.behaviour, event)
        finally:
            with self.lock:
                self.in_flight -= keys
                self.running -= 1


def _answer(behaviour, event) -> InvocationResult:
    try:
        return InvocationResult("req", behaviour(event))
    except Exception as exc:  # noqa: BLE001 - the test's way of making a function error
        return InvocationResult("req", error_type=type(exc).__name__, error_message=str(exc))


def _key(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"]["pk"]["S"]


def _version(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["NewImage"]["v"]["N"])


def _mapping(stream: MemoryStream, function, destination=None, **settings) -> EventSourceMapping:
    return EventSourceMapping(function, stream, region=REGION, account=ACCOUNT,
                              settings=MappingSettings(**settings), destination=destination)


def _lane(key: str, factor: int) -> int:
    return lane_of({"dynamodb": {"Keys": {"pk": {"S": key}}}}, factor)


def _keys_in_lanes(factor: int, per_lane: int = 1) -> list[list[str]]:
    """``per_lane`` keys for each of the ``factor`` lanes."""
    lanes: list[list[str]] = [[] for _ in range(factor)]
    i = 0
    while any(len(keys) < per_lane for keys in lanes):
        key = f"key{i}"
        if len(lanes[_lane(key, factor)]) < per_lane:
            lanes[_lane(key, factor)].append(key)
        i += 1
    return lanes


def _interleaved(keys: list[str], versions: int) -> list[tuple[str, int]]:
    return [(k, v) for v in range(versions) for k in keys]


def test_lane_of_is_stable_and_spreads_keys():
    keys = [f"k{i}" for i in range(200)]
    lanes = [_lane(k, 10) for k in keys]
    assert lanes == [_lane(k, 10) for k in keys]  # not Python's salted hash: the same in every process
    assert set(lanes) == set(range(10))
    assert {_lane(k, 1) for k in keys} == {0}


def test_each_keys_records_stay_in_order_and_never_overlap_under_factor_10():
    keys = [f"item{i}" for i in range(57)]  # not a multiple of 10: a lane by position would split keys
    stream = MemoryStream(_interleaved(keys, 8))
    fn = ConcurrentFunction(hold_s=0.002)
    _mapping(stream, fn, parallelization_factor=10, batch_size=7).run_until_idle(timeout_s=30)
    seen: dict[str, list[int]] = defaultdict(list)
    for event in fn.events:  # events are appended in completion order; a key is never in two at once
        for record in event["Records"]:
            seen[_key(record)].append(_version(record))
    assert fn.overlaps == []
    assert all(seen[k] == list(range(8)) for k in keys)  # each version once, in order
    assert fn.most_at_once > 1  # the lanes did run together


def test_lanes_run_concurrently():
    factor = 4
    keys = [lane[0] for lane in _keys_in_lanes(factor)]
    barrier = threading.Barrier(factor, timeout=3)
    fn = ConcurrentFunction(lambda event: barrier.wait() and None)
    mapping = _mapping(MemoryStream(_interleaved(keys, 1)), fn, parallelization_factor=factor)
    assert mapping.step() == factor  # one batch per lane, all in flight together: the barrier opens
    assert mapping.stats.function_errors == 0 and mapping.stats.records_processed == factor


def test_checkpoint_waits_for_a_failing_lane_while_the_others_go_on():
    factor = 3
    (bad, *_), (good1, *_), (good2, *_) = _keys_in_lanes(factor)
    records = [(good1, 0), (bad, 0), (good1, 1), (good2, 0), (bad, 1), (good2, 1)]
    stream = MemoryStream(records)

    def fail_bad(event):
        if any(_key(r) == bad for r in event["Records"]):
            raise RuntimeError("poison")

    fn = ConcurrentFunction(fail_bad)
    mapping = _mapping(stream, fn, parallelization_factor=factor, maximum_retry_attempts=2)
    for _ in range(2):
        mapping.step()
    done = {(_key(r), _version(r)) for e in fn.events if bad not in {_key(x) for x in e["Records"]}
            for r in e["Records"]}
    assert done == {(good1, 0), (good1, 1), (good2, 0), (good2, 1)}  # the other lanes went past the bad key
    # ... but the checkpoint stays before the oldest unfinished record (the first 'bad'), so a mapping that
    # started again from it would read the failed lane's records (and some done ones: at least once).
    assert mapping.checkpoints() == {"shard-0": f"{1:021d}"}
    mapping.run_until_idle(timeout_s=10)  # retries used up: the bad records are discarded
    assert mapping.stats.records_discarded == 2
    assert mapping.checkpoints() == {"shard-0": f"{len(records):021d}"}


def test_bisection_and_retries_stay_in_the_failing_lane():
    factor = 2
    lanes = _keys_in_lanes(factor, per_lane=4)
    poison, clean = lanes[0][2], lanes[1]
    stream = MemoryStream(_interleaved(lanes[0] + clean, 1))

    def fail_poison(event):
        if any(_key(r) == poison for r in event["Records"]):
            raise RuntimeError("poison")

    dlq = LocalQueue("dlq")
    fn = ConcurrentFunction(fail_poison)
    mapping = _mapping(stream, fn, dlq, parallelization_factor=factor, bisect_batch_on_function_error=True,
                       maximum_retry_attempts=1)
    stats = mapping.run_until_idle(timeout_s=10)
    deliveries = [_key(r) for e in fn.events for r in e["Records"]]
    assert all(deliveries.count(k) == 1 for k in clean)  # the other lane never saw a retry
    assert stats.bisections >= 1 and stats.records_discarded == 1
    (failure,) = dlq.failure_records()
    info = failure["DDBStreamBatchInfo"]
    poison_seq = f"{lanes[0].index(poison) + 1:021d}"
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (poison_seq, poison_seq, 1)


def test_on_failure_record_covers_only_the_lane_batch():
    factor = 2
    lanes = _keys_in_lanes(factor, per_lane=3)
    stream = MemoryStream(_interleaved(lanes[0] + lanes[1], 1))  # seqs 1-3 lane 0, 4-6 lane 1

    def fail_lane_1(event):
        if any(_key(r) in lanes[1] for r in event["Records"]):
            raise RuntimeError("lane 1 fails")

    dlq = LocalQueue("dlq")
    mapping = _mapping(stream, ConcurrentFunction(fail_lane_1), dlq, parallelization_factor=factor,
                       maximum_retry_attempts=0)
    stats = mapping.run_until_idle(timeout_s=10)
    (failure,) = dlq.failure_records()
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        (f"{4:021d}", f"{6:021d}", 3)
    assert stats.records_processed == 3 and stats.records_discarded == 3


def test_partial_batch_response_retries_from_the_failure_in_its_lane_only():
    factor = 2
    lanes = _keys_in_lanes(factor, per_lane=3)
    stream = MemoryStream(_interleaved(lanes[0] + lanes[1], 1))
    reported = threading.Event()

    def report_second(event):
        records = event["Records"]
        if _key(records[0]) == lanes[0][0] and not reported.is_set():
            reported.set()
            return {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
        return None

    fn = ConcurrentFunction(report_second)
    stats = _mapping(stream, fn, parallelization_factor=factor, report_batch_item_failures=True).run_until_idle(
        timeout_s=10)
    deliveries = [_key(r) for e in fn.events for r in e["Records"]]
    assert [deliveries.count(k) for k in lanes[0]] == [1, 2, 2]  # retried from the reported record on
    assert [deliveries.count(k) for k in lanes[1]] == [1, 1, 1]
    assert stats.partial_failures == 1 and stats.records_processed == 6


def test_a_throttled_batch_is_retried_without_using_a_retry():
    throttled = []

    class Throttling(ScriptedFunction):
        def invoke(self, event):
            if not throttled:
                throttled.append(event)
                return InvocationResult("req", error_type="TooManyRequestsException", throttled=True)
            return super().invoke(event)

    fn = Throttling()
    stats = _mapping(MemoryStream([("a", 0)]), fn, maximum_retry_attempts=0).run_until_idle(timeout_s=10)
    assert stats.throttles == 1 and stats.retries == 0 and stats.records_discarded == 0
    assert fn.batches == [["a"]]


@pytest.mark.parametrize("factor", [1, 4])
def test_replay_and_duplicates_under_lanes(factor):
    keys = [lane[0] for lane in _keys_in_lanes(factor)]
    fn = ConcurrentFunction()
    mapping = _mapping(MemoryStream(_interleaved(keys, 1)), fn, parallelization_factor=factor, batch_size=1)
    mapping.duplicate_next_batches(1)
    mapping.run_until_idle(timeout_s=10)
    assert mapping.stats.duplicates == 1 and len(fn.events) == len(keys) + 1
    mapping.replay_last_batch()
    mapping.run_until_idle(timeout_s=10)
    assert len(fn.events) == len(keys) + 2 and fn.overlaps == []


def test_kinesis_records_are_laned_by_partition_key():
    def record(key: str, data: str) -> dict[str, Any]:
        return {"kinesis": {"partitionKey": key, "data": data}}

    assert {lane_of(record("user-7", d), 10) for d in ("a", "b", "c")} == {lane_of(record("user-7", "x"), 10)}
    assert len({lane_of(record(f"user-{i}", "a"), 10) for i in range(100)}) == 10


def test_background_polling_runs_the_lanes_together():
    factor = 4
    keys = [lane[0] for lane in _keys_in_lanes(factor)]
    barrier = threading.Barrier(factor, timeout=3)
    fn = ConcurrentFunction(lambda event: barrier.wait() and None)
    mapping = _mapping(MemoryStream(_interleaved(keys, 1)), fn, parallelization_factor=factor,
                       polling_interval_s=0.01)
    mapping.start()
    try:
        for _ in range(500):
            if mapping.stats.records_processed + mapping.stats.function_errors >= factor:
                break
            time.sleep(0.01)
    finally:
        mapping.stop()
    assert mapping.stats.function_errors == 0 and mapping.stats.records_processed == factor


def test_timing_listener_reports_each_lane_batch_on_its_own():
    factor = 3
    keys = [k for lane in _keys_in_lanes(factor, per_lane=2) for k in lane]
    timings: list = []
    fn = ConcurrentFunction(hold_s=0.01)
    mapping = _mapping(MemoryStream(_interleaved(keys, 1)), fn, parallelization_factor=factor)
    mapping.add_timing_listener(timings.append)
    mapping.run_until_idle(timeout_s=10)
    assert len(timings) == factor  # one report per lane batch
    for report in timings:
        assert len({t.invoked_at for t in report}) == 1 and len({t.finished_at for t in report}) == 1
        assert len({_lane(t.raw["key"], factor) for t in report}) == 1
        assert all(t.read_at <= t.invoked_at <= t.finished_at and t.attempts == 1 for t in report)


@pytest.mark.parametrize("factor", [1, 4])
def test_replay_last_batch_after_replaying_the_whole_stream(factor):
    # Found by the chaos suite at factor 10: the rediscovered shard had no lanes yet.
    fn = ConcurrentFunction()
    mapping = _mapping(MemoryStream([("a", 0), ("b", 0)]), fn, parallelization_factor=factor)
    mapping.run_until_idle(timeout_s=10)
    mapping.replay_from_trim_horizon()
    mapping.replay_last_batch()
    mapping.run_until_idle(timeout_s=10)
    assert mapping.stats.records_processed == 2 * 2 + len(fn.events[0]["Records"])
