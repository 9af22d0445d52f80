"""The lag module's arithmetic (cdk_replication/local/lag.py): percentiles, the split, matching writes with
records, and the open-loop rate limiter, on a fake clock. No DynamoDB, no timing assertions."""

from __future__ import annotations

import base64
import json

import pytest

from cdk_replication.local.event_source_mapping import RecordTiming
from cdk_replication.local.lag import (
    LagReport,
    LagSample,
    LagTracker,
    Percentiles,
    RateLimiter,
    SteadyWriter,
    WriteRate,
    key_text,
    lanes_by_key,
    record_key,
)


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _record(key: int) -> dict:
    return {"eventName": "MODIFY", "dynamodb": {"Keys": {"Id": {"N": str(key)}}, "SequenceNumber": "1"}}


def _timing(key: int, read_at: float, invoked_at: float, finished_at: float, attempts: int = 1) -> RecordTiming:
    return RecordTiming(_record(key), created=float(int(read_at)), read_at=read_at, invoked_at=invoked_at,
                        finished_at=finished_at, attempts=attempts)


def test_percentiles_are_nearest_rank():
    p = Percentiles.of(float(v) for v in range(1, 101))
    assert (p.p50, p.p99, p.max) == (50.0, 99.0, 100.0)
    assert Percentiles.of([0.7]) == Percentiles(0.7, 0.7, 0.7)
    assert Percentiles.of([]) == Percentiles(0.0, 0.0, 0.0)


def test_a_sample_splits_its_lag_into_poll_wait_assembly_and_writing():
    sample = LagSample(sent=10.0, read_at=10.25, invoked_at=10.5, finished_at=11.0, attempts=1)
    assert sample.parts() == pytest.approx((0.25, 0.25, 0.5))
    assert sample.lag == pytest.approx(sum(sample.parts()))


def test_the_tracker_matches_writes_and_records_per_key_in_order_whichever_comes_first():
    tracker = LagTracker()
    tracker.sent({"Id": {"N": "1"}}, 10.0)
    tracker.sent({"Id": {"N": "1"}}, 11.0)
    # Key 2's record arrives before its send time is known (a writer in another process reports at the end).
    tracker.on_timings([_timing(1, 10.1, 10.2, 10.4), _timing(2, 12.1, 12.2, 12.6, attempts=2)])
    tracker.sent(key_text({"Id": {"N": "2"}}), 12.0)
    tracker.on_timings([_timing(1, 11.5, 11.6, 11.7)])
    samples = sorted(tracker.samples(), key=lambda s: s.sent)
    assert [round(s.lag, 6) for s in samples] == [0.4, 0.7, 0.6]
    assert [s.sent for s in samples] == [10.0, 11.0, 12.0]
    assert tracker.replicated == 3 and tracker.unmatched() == (0, 0)
    report = tracker.report()
    assert report.samples == 3 and report.retried == 1
    assert report.lag.max == pytest.approx(0.7)
    assert report.parts[0].max == pytest.approx(0.5)  # key 1's second write waited 0.5 s for its poll


def test_the_report_says_where_the_slowest_writes_spent_their_time():
    fast = [LagSample(0.0, 0.1, 0.1, 0.2, 1)] * 99
    slow = [LagSample(0.0, 0.2, 1.2, 1.5, 1)]
    report = LagReport.of(fast + slow)
    assert report.tail == pytest.approx((0.2, 1.0, 0.3))
    assert "lag p50 0.20 s p99 0.20 s max 1.50 s" in report.summary()
    assert "batch assembly 0.00/0.00" in report.summary()


def test_record_key_reads_dynamodb_and_kinesis_records():
    assert record_key(_record(7)) == {"Id": {"N": "7"}}
    data = json.dumps({"dynamodb": {"Keys": {"pk": {"B": base64.b64encode(b"\x01").decode()}}}}).encode()
    assert record_key({"Data": data}) == {"pk": {"B": b"\x01"}}


def test_the_rate_limiter_is_open_loop():
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)
    assert limiter.wait() == 0.0  # slot 0 is due at once
    assert limiter.wait() == 0.0 and clock.now == pytest.approx(100.01)  # slot 1 waits 10 ms
    clock.now += 1.0  # a write took a second
    # The schedule does not move: the slots that fell due meanwhile go at once, each reported late.
    slept = len(clock.slept)
    lateness = [limiter.wait() for _ in range(3)]
    assert len(clock.slept) == slept
    assert lateness == pytest.approx([0.99, 0.98, 0.97])
    assert clock.now == pytest.approx(101.01)


def test_write_rate_says_whether_the_rate_was_kept():
    kept = WriteRate(target=500, writes=5000, seconds=10.0, late=0, worst_late_s=0.0)
    assert kept.kept and kept.achieved == 500 and "could not keep" not in kept.summary()
    slow = WriteRate(target=500, writes=1000, seconds=10.0, late=900, worst_late_s=8.0)
    assert not slow.kept and "100 writes/s of 500 asked" in slow.summary() and "could not keep" in slow.summary()


def test_lanes_keep_every_key_in_one_lane_in_order():
    items = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2), ("a", 3)]
    lanes = lanes_by_key(items, 2, key=lambda item: item[0])
    for key in "abc":
        holding = [lane for lane in lanes if any(k == key for k, _ in lane)]
        assert len(holding) == 1
        assert [v for k, v in holding[0] if k == key] == sorted(v for k, v in items if k == key)


def test_the_steady_writer_reports_each_send_before_writing():
    applied: list[str] = []
    sends: list[tuple[str, float]] = []
    ops = [f"k{i % 3}" for i in range(9)]
    writer = SteadyWriter(ops, applied.append, key=lambda op: op, rate=1e6, threads=3,
                          on_sent=lambda text, at: sends.append((text, at)))
    rate = writer.start().join()
    assert sorted(applied) == sorted(ops) and rate.writes == 9 and not writer.errors
    assert sorted(t for t, _ in sends) == sorted(ops) and len(writer.sends) == 9


def test_the_replicators_own_writes_to_the_source_are_not_matched():
    """Multi-active writes tombstones into the source table; their records are not the workload's writes."""
    tracker = LagTracker(metadata_prefix="_meta_")
    tombstone = _timing(1, 10.1, 10.2, 10.3)
    tombstone.raw["dynamodb"]["NewImage"] = {"Id": {"N": "1"}, "_meta_deleted": {"BOOL": True}}
    tracker.on_timings([tombstone])
    tracker.sent({"Id": {"N": "1"}}, 11.0)
    tracker.on_timings([_timing(1, 11.1, 11.2, 11.5)])
    assert [round(s.lag, 6) for s in tracker.samples()] == [0.5]
    assert tracker.skipped == 1 and tracker.replicated == 1 and tracker.unmatched() == (0, 0)
