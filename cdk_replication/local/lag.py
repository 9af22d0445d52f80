"""End-to-end replication lag in the local runtime: a steady writer and a tracker that says where the time goes.

The lag of one write is the time from just before the write was sent to the source table until the replicator's
invocation that carried its stream record returned (the mapping checkpointed it). The replicator returns only
after it wrote every target, so that moment is when the write is visible in every replica (multi-active: in every
other region). The tracker splits it, from the mapping's :class:`~cdk_replication.local.event_source_mapping.
RecordTiming` of the record, into

* **poll wait** (``read_at - sent``): until a poll (``GetRecords``) returned the record: the stream's own
  delay, the pause between polls of an idle shard (Lambda: 0.25 s) and a poll that waits for the previous batch
  of the shard to finish (one batch in flight per shard and lane);
* **batch assembly** (``invoked_at - read_at``): from the read to the start of the invocation that succeeded:
  the batching window, reading the rest of the batch, retries;
* **writing** (``finished_at - invoked_at``): the invocation itself, a cold start included.

Writes and records are matched per item key in order: the n-th write of a key is the n-th record of that key
(every write the workloads make changes its item, so each makes exactly one stream record). Both may arrive in
any order (the writer may run in another process and report its send times at the end).

Times are epoch seconds (``time.time``), the mapping's clock.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cdk_replication.local.event_source_mapping import RecordTiming

#: The steady write rate of the demo and the lag benchmark, in writes per second (issue 17).
DEFAULT_RATE = 500.0
#: A write sent more than this late against its slot counts as late, in seconds.
LATE_AFTER_S = 0.05
#: The writer kept its rate when it achieved at least this share of the target.
RATE_KEPT_SHARE = 0.95
#: The parts of the lag, in the order of :meth:`LagSample.parts`.
PARTS = ("poll wait", "batch assembly", "writing")


def key_text(key: dict[str, Any]) -> str:
    """A stable text for an item key in boto3's attribute-value form (binary values as hex)."""
    plain = {}
    for name, value in key.items():
        (kind, inner), = value.items()
        plain[name] = inner.hex() if kind == "B" else inner
    return json.dumps(plain, sort_keys=True)


def record_key(record: dict[str, Any]) -> dict[str, Any]:
    """The item key of a raw record a mapping checkpointed: a DynamoDB stream record (boto3 shape), or a Kinesis
    record whose data is a change record in JSON (binary key values as base64)."""
    if "dynamodb" in record:
        return record["dynamodb"]["Keys"]
    keys = json.loads(bytes(record["Data"]))["dynamodb"]["Keys"]
    return {name: {"B": base64.b64decode(v["B"])} if "B" in v else v for name, v in keys.items()}


@dataclass(frozen=True)
class Percentiles:
    """p50, p99 and maximum of a set of durations, in seconds (nearest rank; zeros when empty)."""

    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Percentiles":
        """The percentiles of ``values`` by nearest rank: the smallest value with at least q of them at or
        below it."""
        ordered = sorted(values)
        if not ordered:
            return cls(0.0, 0.0, 0.0)
        pick = lambda q: ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
        return cls(pick(0.50), pick(0.99), ordered[-1])


@dataclass(frozen=True)
class LagSample:
    """One write matched with its record's timing (epoch seconds)."""

    sent: float
    read_at: float
    invoked_at: float
    finished_at: float
    attempts: int

    @property
    def lag(self) -> float:
        """Seconds from the write to its visibility in every replica."""
        return self.finished_at - self.sent

    def parts(self) -> tuple[float, float, float]:
        """(poll wait, batch assembly, writing) in seconds; they add up to :attr:`lag`."""
        return self.read_at - self.sent, self.invoked_at - self.read_at, self.finished_at - self.invoked_at


@dataclass(frozen=True)
class LagReport:
    """The lag of a run: percentiles of the whole and of each part, and where the slowest 1% spent it.

    Attributes:
        samples: writes matched with their records.
        lag: percentiles of the lag.
        parts: percentiles of each part (:data:`PARTS` order). p99s of the parts do not add up to the lag's.
        tail: the mean of each part over the slowest 1% of writes (at least one): where the p99 goes.
        retried: writes whose record needed more than one invocation.
    """

    samples: int
    lag: Percentiles
    parts: tuple[Percentiles, Percentiles, Percentiles]
    tail: tuple[float, float, float]
    retried: int

    @classmethod
    def of(cls, samples: Sequence[LagSample]) -> "LagReport":
        """The report of ``samples``."""
        split = [s.parts() for s in samples]
        slowest = sorted(samples, key=lambda s: s.lag)[-max(1, len(samples) // 100):] if samples else []
        tail = tuple(sum(s.parts()[i] for s in slowest) / len(slowest) if slowest else 0.0 for i in range(3))
        return cls(
            samples=len(samples),
            lag=Percentiles.of(s.lag for s in samples),
            parts=tuple(Percentiles.of(p[i] for p in split) for i in range(3)),  # type: ignore[arg-type]
            tail=tail,  # type: ignore[arg-type]
            retried=sum(1 for s in samples if s.attempts > 1),
        )

    def summary(self) -> str:
        """One line: lag p50/p99/max, then p50/p99 of each part, e.g. ``lag p50 0.31 s p99 0.80 s max 0.92 s ·
        poll wait 0.12/0.25 · batch assembly 0.00/0.01 · writing 0.17/0.55 s (p50/p99)``."""
        parts = " · ".join(f"{name} {p.p50:.2f}/{p.p99:.2f}" for name, p in zip(PARTS, self.parts))
        return (f"lag p50 {self.lag.p50:.2f} s p99 {self.lag.p99:.2f} s max {self.lag.max:.2f} s · "
                f"{parts} s (p50/p99)")


def new_image(record: dict[str, Any]) -> dict[str, Any]:
    """The new image of a raw record (DynamoDB stream or Kinesis); empty for a delete."""
    if "dynamodb" in record:
        return record["dynamodb"].get("NewImage") or {}
    return json.loads(bytes(record["Data"]))["dynamodb"].get("NewImage") or {}


class LagTracker:
    """Matches writes (:meth:`sent`) with the timings a mapping reports (:meth:`on_timings`, registered with
    ``mapping.add_timing_listener``), per item key in order, whichever comes first. Thread-safe.

    Args:
        metadata_prefix: records whose new image has an attribute with this prefix are the replicator's own
            writes to the source table (multi-active tombstones and repairs), not the workload's: they are not
            matched. Default: ``None`` (every record is matched).
    """

    def __init__(self, metadata_prefix: str | None = None) -> None:
        self._prefix = metadata_prefix
        #: Records skipped as the replicator's own writes.
        self.skipped = 0
        self._sends: dict[str, deque[float]] = defaultdict(deque)
        self._timings: dict[str, deque[RecordTiming]] = defaultdict(deque)
        self._samples: list[LagSample] = []
        self._lock = threading.Lock()
        #: Workload records checkpointed so far (matched or not; not the skipped ones).
        self.replicated = 0

    def sent(self, key: dict[str, Any] | str, at: float) -> None:
        """A write of ``key`` (boto3 attribute values, or its :func:`key_text`) was sent at ``at``."""
        text = key if isinstance(key, str) else key_text(key)
        with self._lock:
            self._sends[text].append(at)
            self._match(text)

    def on_timings(self, timings: list[RecordTiming]) -> None:
        """A mapping's timing listener: the records of one checkpoint."""
        with self._lock:
            for timing in timings:
                if self._prefix and any(name.startswith(self._prefix) for name in new_image(timing.raw)):
                    self.skipped += 1
                    continue
                text = key_text(record_key(timing.raw))
                self._timings[text].append(timing)
                self._match(text)
                self.replicated += 1

    def _match(self, text: str) -> None:
        sends, timings = self._sends[text], self._timings[text]
        while sends and timings:
            t = timings.popleft()
            self._samples.append(LagSample(sends.popleft(), t.read_at, t.invoked_at, t.finished_at, t.attempts))

    def samples(self) -> list[LagSample]:
        """The writes matched so far."""
        with self._lock:
            return list(self._samples)

    def report(self) -> LagReport:
        """The report of every write matched so far."""
        return LagReport.of(self.samples())

    def unmatched(self) -> tuple[int, int]:
        """(writes without a record yet, records without a write): both 0 after a complete run."""
        with self._lock:
            return (sum(len(q) for q in self._sends.values()), sum(len(q) for q in self._timings.values()))


class RateLimiter:
    """An open-loop schedule of ``rate`` slots per second shared by any number of threads: slot i is due at
    ``start + i / rate``, whatever happened to earlier writes. A thread that takes a slot it is late for goes at
    once (and so catches up); the schedule never slows down.

    Args:
        rate: slots per second (> 0).
        clock: monotonic seconds. Default: ``time.monotonic``.
        sleep: waits a number of seconds. Default: ``time.sleep``.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 writes/s, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0
        self._start: float | None = None
        #: Seconds each slot was taken after it was due (0 when on time), in slot order of taking.
        self.lateness: list[float] = []

    def wait(self) -> float:
        """Take the next slot, sleep until it is due, and return how late it was taken (seconds, >= 0)."""
        with self._lock:
            now = self._clock()
            if self._start is None:
                self._start = now
            due = self._start + self._next / self.rate
            self._next += 1
        if due > now:
            self._sleep(due - now)
        late = max(0.0, now - due)
        with self._lock:
            self.lateness.append(late)
        return late


@dataclass(frozen=True)
class WriteRate:
    """What a steady writer achieved.

    Attributes:
        target: the rate asked for, writes/s.
        writes: writes made.
        seconds: from the first write's slot to the last write's completion.
        late: writes sent more than :data:`LATE_AFTER_S` after their slot.
        worst_late_s: the latest any write was sent after its slot, in seconds.
    """

    target: float
    writes: int
    seconds: float
    late: int
    worst_late_s: float

    @property
    def achieved(self) -> float:
        """Writes per second achieved."""
        return self.writes / self.seconds if self.seconds > 0 else 0.0

    @property
    def kept(self) -> bool:
        """Whether the machine kept the rate (at least :data:`RATE_KEPT_SHARE` of the target)."""
        return self.achieved >= RATE_KEPT_SHARE * self.target

    def summary(self) -> str:
        """One line, e.g. ``499 writes/s of 500 asked (3,000 writes, 0 late)`` and a warning if not kept."""
        text = (f"{self.achieved:,.0f} writes/s of {self.target:,.0f} asked ({self.writes:,} writes, "
                f"{self.late:,} sent >{LATE_AFTER_S * 1000:.0f} ms late, worst {self.worst_late_s:.2f} s)")
        return text if self.kept else text + ": the machine could not keep the rate"


def write_rate(limiter: RateLimiter, writes: int, seconds: float) -> WriteRate:
    """The :class:`WriteRate` of a run of ``writes`` writes paced by ``limiter`` that took ``seconds``."""
    lateness = list(limiter.lateness)
    return WriteRate(target=limiter.rate, writes=writes, seconds=seconds,
                     late=sum(1 for x in lateness if x > LATE_AFTER_S), worst_late_s=max(lateness, default=0.0))


def lanes_by_key(items: Sequence[Any], count: int, key: Callable[[Any], str]) -> list[list[Any]]:
    """Split ``items`` into ``count`` lanes, every item of one key in the same lane, in their order."""
    lanes: list[list[Any]] = [[] for _ in range(count)]
    for item in items:
        lanes[_stable_hash(key(item)) % count].append(item)
    return lanes


def _stable_hash(text: str) -> int:
    """A hash that does not change between processes (``hash`` of a str does)."""
    value = 0
    for char in text.encode():
        value = (value * 131 + char) & 0xFFFFFFFF
    return value


class SteadyWriter:
    """Writes operations at a steady rate from ``threads`` threads, open loop: the threads share one
    :class:`RateLimiter`, and one key's operations always go through the same thread, in order.

    Args:
        ops: the operations, in order.
        apply: ``apply(op)`` sends one write (blocking).
        key: the item key text of an operation (what :class:`LagTracker` matches on).
        rate: writes per second. Default: :data:`DEFAULT_RATE`.
        threads: writer threads; enough that a slow write does not hold back the schedule. Default: 16.
        on_sent: called ``on_sent(key_text, sent_at)`` just before each write (e.g. ``LagTracker.sent``).
        wall: the clock send times are taken on (the mapping's). Default: ``time.time``.
    """

    def __init__(self, ops: Sequence[Any], apply: Callable[[Any], None], key: Callable[[Any], str], *,
                 rate: float = DEFAULT_RATE, threads: int = 16,
                 on_sent: Callable[[str, float], None] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.limiter = RateLimiter(rate)
        self._lanes = [lane for lane in lanes_by_key(ops, max(1, threads), key) if lane]
        self._apply, self._key, self._on_sent, self._wall = apply, key, on_sent, wall
        self.expected = len(ops)
        #: Writes made so far (one cell bumped by every thread).
        self.counter = [0]
        #: What a writer thread raised; the first one is what the caller reports.
        self.errors: list[BaseException] = []
        #: (key text, sent at) of every write, in the order they were sent per key.
        self.sends: list[tuple[str, float]] = []
        self._threads = [threading.Thread(target=self._run, args=(lane,), daemon=True) for lane in self._lanes]
        self._count_lock = threading.Lock()
        self._started = 0.0
        self._ended = 0.0

    def start(self) -> "SteadyWriter":
        """Start the threads; returns self."""
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    @property
    def done(self) -> bool:
        """True once every thread has finished."""
        return not any(thread.is_alive() for thread in self._threads)

    def join(self) -> WriteRate:
        """Wait for every thread; returns the rate achieved."""
        for thread in self._threads:
            thread.join()
        return self.rate()

    def rate(self) -> WriteRate:
        """The rate achieved so far."""
        end = self._ended or time.monotonic()
        return write_rate(self.limiter, self.counter[0], end - self._started)

    def _run(self, lane: list[Any]) -> None:
        try:
            for op in lane:
                self.limiter.wait()
                text, at = self._key(op), self._wall()
                self.sends.append((text, at))
                if self._on_sent is not None:
                    self._on_sent(text, at)
                self._apply(op)
                with self._count_lock:
                    self.counter[0] += 1
                    self._ended = max(self._ended, time.monotonic())
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.errors.append(exc)
