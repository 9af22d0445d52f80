"""An emulation of Lambda's event source mapping for DynamoDB Streams (and, through the same engine, for
Kinesis Data Streams: see :mod:`cdk_replication.local.kinesis`).

The engine (:class:`EventSourceMapping`) knows nothing about the kind of stream: an :class:`EventSource`
lists the shards, opens iterators, reads records and builds the event record and the on-failure batch info
in its service's shape. :class:`StreamEventSourceMapping` is the engine on a :class:`DynamoDBStreamSource`.

What it does, following Lambda's documented behaviour:

* **Shards.** Discovers the stream's shards (``DescribeStream``) about once a second and processes a child
  shard only once its parent is finished (read to its end, every record checkpointed or discarded). One
  batch at a time per lane: with ``parallelization_factor`` N a shard's records are split into N lanes by a
  stable hash of their item key (DynamoDB ``Keys``, Kinesis partition key), and up to N batches of a shard,
  one per lane, are invoked concurrently; one key's records are always in order and never in two batches at
  once. A shard's checkpoint is the record before the oldest one not yet processed or discarded in any lane.
* **Starting position.** ``TRIM_HORIZON`` reads every record still in the stream; ``LATEST`` starts at the
  end of each open shard when the mapping is created. Shards that appear later are read from their start.
* **Batching.** Up to ``batch_size`` records and at most 6 MB of event per invocation. With a batching
  window, records are gathered until the batch is full, the payload limit is reached or the window (counted
  from the first buffered record) has passed. A closed shard's last records are sent without waiting. Without
  a window, a poll stops reading at the tip of the shard (a short page) and invokes with what it read.
* **Events.** ``{"Records": [...]}`` with records in exactly Lambda's JSON shape (:func:`to_lambda_record`).
* **Errors.** Per lane batch: a function error (exception, timeout, crash) fails that whole batch. With
  ``bisect_batch_on_function_error`` a failed batch of more than one record is split in two halves, retried
  one after the other, without using the retry quota. A failed single record (or any batch without bisect)
  is retried until ``maximum_retry_attempts`` retries have failed (-1: no limit) or its records are older
  than ``maximum_record_age_s`` (-1: no limit); then it is discarded and, if the mapping has an on-failure
  destination, an invocation record of Lambda's shape (shard id, sequence number range, batch size, stream
  ARN) is sent there: a :class:`~cdk_replication.local.queue.LocalQueue` (SQS or SNS) gets that metadata only,
  a :class:`~cdk_replication.local.bucket.LocalBucket` (S3) gets an object with the record plus ``payload``,
  the invocation event as a JSON string, under Lambda's key ``aws/lambda/<uuid>/<shard id>/YYYY/MM/DD/...``.
* **ReportBatchItemFailures.** A response ``{"batchItemFailures": [{"itemIdentifier": seq}, ...]}``
  checkpoints the records before the lowest reported sequence number and retries the rest. An empty or
  absent list (or a null/empty response) is success; a malformed list (empty/null identifier, wrong key, a
  sequence number not in the batch) fails the whole batch. Without the setting the response is ignored.

Drive it deterministically with :meth:`StreamEventSourceMapping.step` /
:meth:`StreamEventSourceMapping.run_until_idle`, or in a background thread with :meth:`start`/:meth:`stop`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cdk_replication.local.bucket import BucketAccessDenied
from cdk_replication.local.lambda_runtime import InvocationResult
from cdk_replication.local.poller import BackgroundPoller
from cdk_replication.local.stream_records import (
    aws_stream_arn,
    list_shards,
    shards_in_lineage_order,
    to_lambda_record,
)

#: Lambda polls each shard four times per second when it has nothing to do, in seconds.
DEFAULT_POLLING_INTERVAL_S = 0.25
#: How often the shard list is refreshed, in seconds.
SHARD_DISCOVERY_INTERVAL_S = 1.0
#: Lambda's limit on a synchronous invocation's payload, in bytes.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: ``GetRecords`` returns at most this many records per call.
MAX_RECORDS_PER_READ = 1000

STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
#: ``requestContext.condition`` of an on-failure record when the retry quota is used up (Lambda's wording).
CONDITION_RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
#: ``requestContext.condition`` when records were older than ``MaximumRecordAgeInSeconds``.
CONDITION_RECORD_AGE_EXCEEDED = "MaximumRecordAgeExceeded"


class Invokable(Protocol):
    """What the mapping needs of a function (a :class:`~cdk_replication.local.LocalFunction`)."""

    arn: str

    def invoke(self, event: Any) -> InvocationResult: ...


class FailureDestination(Protocol):
    """An on-failure destination: a :class:`~cdk_replication.local.queue.LocalQueue` (SQS, SNS) or a
    :class:`~cdk_replication.local.bucket.LocalBucket` (S3)."""

    arn: str

    def deliver_on_failure(self, record: dict[str, Any], *, event: dict[str, Any], mapping_uuid: str,
                           shard_id: str, when: float, principal_arn: str | None = None) -> str: ...

    def failure_records(self) -> list[Any]: ...


class ShardInfo(NamedTuple):
    """One shard as an :class:`EventSource` lists it."""

    shard_id: str
    parent_id: str | None = None
    adjacent_parent_id: str | None = None  # Kinesis: the second parent of a merged shard
    closed: bool = False


class IteratorExpired(Exception):
    """:meth:`EventSource.read`: the shard iterator expired; open a new one after the last record read."""


class DataTrimmed(Exception):
    """:meth:`EventSource.read`: the iterator points at records that were trimmed; start at the horizon."""


class SourceRecord(NamedTuple):
    """What an :class:`EventSource` makes of one raw record."""

    event_record: dict[str, Any]  # the record exactly as it appears in the Lambda event
    seq: str  # its sequence number (the ``itemIdentifier`` of a partial batch response)
    created: float  # epoch seconds that record ages are measured from


class EventSource(Protocol):
    """The stream side of a mapping: one service's API and record shapes.

    ``read`` translates the service's expired-iterator and trimmed-data errors into :class:`IteratorExpired`
    and :class:`DataTrimmed`.
    """

    #: The stream ARN as AWS writes it (``eventSourceARN``, the on-failure record's ``streamArn``).
    event_source_arn: str
    #: The key of the on-failure record's batch info (``DDBStreamBatchInfo``, ``KinesisBatchInfo``).
    batch_info_key: str

    def shards(self) -> list[ShardInfo] | None:
        """Every shard of the stream, or ``None`` if the stream no longer exists."""

    def iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str | None:
        """A shard iterator (``TRIM_HORIZON``, ``LATEST``, ``AFTER_SEQUENCE_NUMBER``)."""

    def read(self, shard_id: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One ``GetRecords`` page: raw records and the next iterator (``None``: closed and read to its end)."""

    def to_record(self, raw: dict[str, Any], shard_id: str, now: float) -> SourceRecord:
        """The event record, sequence number and creation time of one raw record first read at ``now``."""

    def item_key(self, identifier: Any) -> Hashable | None:
        """How a ``batchItemFailures`` ``itemIdentifier`` is compared with sequence numbers (``None``: invalid)."""

    def batch_info(self, shard_id: str, first: SourceRecord, last: SourceRecord, size: int) -> dict[str, Any]:
        """The on-failure record's batch info for the records ``first`` .. ``last``."""


class DynamoDBStreamSource:
    """A DynamoDB stream (DynamoDB Local) as an :class:`EventSource`, in Lambda's DynamoDB Streams shapes.

    Args:
        stream_arn: the stream ARN as DynamoDB Local reports it (``LatestStreamArn`` of the table).
        streams_client: a boto3 ``dynamodbstreams`` client for the table's region and account.
        region: the table's region (the records' ``awsRegion``).
        account: the table's account (in the records' ``eventSourceARN``).
    """

    batch_info_key = "DDBStreamBatchInfo"

    def __init__(self, stream_arn: str, streams_client: Any, region: str, account: str) -> None:
        self.local_stream_arn = stream_arn
        self.event_source_arn = aws_stream_arn(stream_arn, region, account)
        self.region = region
        self.client = streams_client

    def shards(self) -> list[ShardInfo] | None:
        try:
            shards = list_shards(self.client, self.local_stream_arn)
        except self.client.exceptions.ResourceNotFoundException:
            return None  # the table (and its stream) is gone: nothing more will ever be read
        return [ShardInfo(raw["ShardId"], raw.get("ParentShardId"), None,
                          "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})) for raw in shards]

    def iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str | None:
        kwargs: dict[str, Any] = {"StreamArn": self.local_stream_arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence_number is not None:
            kwargs["SequenceNumber"] = sequence_number
        return self.client.get_shard_iterator(**kwargs).get("ShardIterator")

    def read(self, shard_id: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        errors = self.client.exceptions
        try:
            page = self.client.get_records(ShardIterator=iterator, Limit=limit)
        except errors.ExpiredIteratorException as exc:
            raise IteratorExpired(str(exc)) from exc
        except errors.TrimmedDataAccessException as exc:
            raise DataTrimmed(str(exc)) from exc
        return page.get("Records", []), page.get("NextShardIterator")

    def to_record(self, raw: dict[str, Any], shard_id: str, now: float) -> SourceRecord:
        event_record = to_lambda_record(raw, self.region, self.event_source_arn)
        stamped = raw["dynamodb"]["ApproximateCreationDateTime"]
        stamped_s = stamped.timestamp() if isinstance(stamped, dt.datetime) else float(stamped)
        # DynamoDB Local stamps records to the minute; AWS to the second. The time the record was
        # first read (never before its stamp) is within one poll of its creation, so ages, the
        # iterator age and the event's timestamp use that, rounded down to the second like AWS.
        created_s = float(int(max(stamped_s, now)))
        event_record["dynamodb"]["ApproximateCreationDateTime"] = created_s
        return SourceRecord(event_record, raw["dynamodb"]["SequenceNumber"], created_s)

    def item_key(self, identifier: Any) -> Hashable | None:
        return identifier if isinstance(identifier, str) and identifier else None

    def batch_info(self, shard_id: str, first: SourceRecord, last: SourceRecord, size: int) -> dict[str, Any]:
        return batch_info(shard_id, first, last, size, self.event_source_arn, millis=False)


def batch_info(shard_id: str, first: SourceRecord, last: SourceRecord, size: int, stream_arn: str,
               millis: bool) -> dict[str, Any]:
    """Lambda's ``...BatchInfo`` of an on-failure record (DynamoDB's arrival times are to the second,
    Kinesis's to the millisecond)."""
    return {
        "shardId": shard_id,
        "startSequenceNumber": first.seq,
        "endSequenceNumber": last.seq,
        "approximateArrivalOfFirstRecord": _iso(first.created, millis=millis),
        "approximateArrivalOfLastRecord": _iso(last.created, millis=millis),
        "batchSize": size,
        "streamArn": stream_arn,
    }


@dataclass(frozen=True)
class MappingSettings:
    """The settings of an ``AWS::Lambda::EventSourceMapping`` on a DynamoDB stream.

    Attributes:
        batch_size: most records per invocation (1-10000). Default: 100.
        maximum_batching_window_s: seconds to gather records before invoking (0-300). Default: 0.
        starting_position: ``TRIM_HORIZON`` or ``LATEST``. Default: ``TRIM_HORIZON``.
        bisect_batch_on_function_error: split a batch that failed with a function error. Default: False.
        maximum_retry_attempts: retries of a failed batch before it is discarded; -1 means until the records
            expire (0-10000 or -1). Default: -1.
        maximum_record_age_s: records older than this many seconds are discarded instead of being
            (re)tried; -1 means no limit (-1 or 60-604800). Default: -1.
        report_batch_item_failures: honour ``batchItemFailures`` in the function's response. Default: False.
        parallelization_factor: concurrent batches per shard (1-10). Records go to one of ``factor`` lanes by
            a stable hash of their item key (DynamoDB: ``Keys``; Kinesis: the partition key); each lane has
            at most one batch in flight, so one key's records stay in order. Default: 1.
        enabled: a disabled mapping reads nothing. Default: True.
        polling_interval_s: pause between polls of an idle shard in background mode. Default: 0.25.
    """

    batch_size: int = 100
    maximum_batching_window_s: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    report_batch_item_failures: bool = False
    parallelization_factor: int = 1
    enabled: bool = True
    polling_interval_s: float = DEFAULT_POLLING_INTERVAL_S

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.batch_size <= 10000, "batch_size", self.batch_size, "1-10000"),
            (0 <= self.maximum_batching_window_s <= 300, "maximum_batching_window_s",
             self.maximum_batching_window_s, "0-300 seconds"),
            (self.starting_position in STARTING_POSITIONS, "starting_position", self.starting_position,
             " or ".join(STARTING_POSITIONS)),
            (self.maximum_retry_attempts == -1 or 0 <= self.maximum_retry_attempts <= 10000,
             "maximum_retry_attempts", self.maximum_retry_attempts, "-1 or 0-10000"),
            (self.maximum_record_age_s == -1 or 60 <= self.maximum_record_age_s <= 604800,
             "maximum_record_age_s", self.maximum_record_age_s, "-1 or 60-604800 seconds"),
            (1 <= self.parallelization_factor <= 10, "parallelization_factor", self.parallelization_factor, "1-10"),
            (self.polling_interval_s > 0, "polling_interval_s", self.polling_interval_s, "> 0"),
        ]
        for ok, name, value, allowed in checks:
            if not ok:
                raise ValueError(f"event source mapping {name}={value!r} is out of range; use {allowed}")


@dataclass
class MappingStats:
    """Progress counters of one mapping (read them at any time; updated after each invocation).

    Attributes:
        invocations: function invocations, including retries and duplicates.
        records_delivered: records sent to the function, counting every retry and duplicate.
        records_processed: records checkpointed after a successful invocation.
        batches_succeeded: invocations that checkpointed their whole batch.
        function_errors: invocations that ended in a function error (exception, timeout, crash).
        partial_failures: invocations whose ``batchItemFailures`` named a record.
        malformed_responses: invocations whose ``batchItemFailures`` could not be understood.
        retries: batches queued again after a failure.
        bisections: failed batches split in two.
        records_discarded: records given up on (retries exhausted or too old).
        on_failure_records: invocation records sent to the on-failure destination.
        destination_delivery_failures: invocation records the destination refused (Lambda's
            ``DestinationDeliveryFailures``; e.g. the role may not ``s3:PutObject`` that key, or the bucket
            policy denies it); those records are discarded all the same.
        duplicates: extra deliveries made by the duplicate-delivery fault.
        throttles: invocations the function refused for its reserved concurrency (retried, not counted as
            invocations or retries).
        iterator_age_ms: age of the last record of the last invocation when it finished, in ms (Lambda's
            ``IteratorAge`` metric); the replication lag.
        last_error: ``errorType: errorMessage`` of the last function error, if any.
    """

    invocations: int = 0
    records_delivered: int = 0
    records_processed: int = 0
    batches_succeeded: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    malformed_responses: int = 0
    retries: int = 0
    bisections: int = 0
    records_discarded: int = 0
    on_failure_records: int = 0
    destination_delivery_failures: int = 0
    duplicates: int = 0
    throttles: int = 0
    iterator_age_ms: float = 0.0
    last_error: str | None = None


@dataclass
class _Record:
    raw: dict[str, Any]
    event_record: dict[str, Any]
    size: int
    seq: str
    created: float
    read_at: float = 0.0  # when GetRecords returned it (the mapping's clock, epoch seconds)
    lane: int = 0  # the concurrent batch (of its shard) it belongs to: hash of its item key % factor
    done: bool = False  # checkpointed or discarded

    @property
    def source_record(self) -> SourceRecord:
        return SourceRecord(self.event_record, self.seq, self.created)


@dataclass
class _Batch:
    records: list[_Record]
    attempts: int = 0  # invocations that carried these records
    retries: int = 0  # failed attempts counted against MaximumRetryAttempts
    last_result: InvocationResult | None = None
    invoked_at: float = 0.0  # when the last invocation started (the mapping's clock, epoch seconds)


@dataclass(eq=False)
class _Lane:
    """One of a shard's ``parallelization_factor`` concurrent batches: the records whose item key hashes to
    it, in stream order, and the retries (or bisected halves) that go before them."""

    buffer: deque[_Record] = field(default_factory=deque)
    pending: deque[_Batch] = field(default_factory=deque)
    first_buffered_at: float | None = None
    busy: bool = False  # a batch of this lane is being invoked

    @property
    def empty(self) -> bool:
        return not self.buffer and not self.pending and not self.busy


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    adjacent_parent_id: str | None = None
    iterator: str | None = None
    started: bool = False
    ended: bool = False  # GetRecords returned no next iterator: the shard is closed and fully read
    finished: bool = False
    caught_up: bool = False  # the last read returned nothing new
    lanes: list[_Lane] = field(default_factory=list)
    #: Records read and not yet checkpointed or discarded, in stream order: the oldest bounds the checkpoint.
    unfinished: deque[_Record] = field(default_factory=deque)
    last_read_seq: str | None = None
    checkpoint: str | None = None

    @property
    def buffered(self) -> int:
        return sum(len(lane.buffer) for lane in self.lanes)


#: Called with the records of every successful checkpoint and the time it happened (epoch seconds).
CheckpointListener = Callable[[list[dict[str, Any]], float], None]


@dataclass(frozen=True)
class RecordTiming:
    """Where one checkpointed record's time went, on the mapping's clock (epoch seconds).

    Attributes:
        raw: the record as the stream returned it.
        created: its creation time as the stream reports it (DynamoDB Streams: whole seconds).
        read_at: when a poll (``GetRecords``) returned it.
        invoked_at: when the invocation that succeeded for it started.
        finished_at: when that invocation returned and the record was checkpointed.
        attempts: invocations that carried it (1 unless it was retried).
    """

    raw: dict[str, Any]
    created: float
    read_at: float
    invoked_at: float
    finished_at: float
    attempts: int


#: Called with the timings of the records of every successful checkpoint.
TimingListener = Callable[[list[RecordTiming]], None]


class EventSourceMapping(BackgroundPoller):
    """Lambda's event source mapping from one stream (any :class:`EventSource`) to one function.

    Args:
        function: the function to invoke (a :class:`~cdk_replication.local.LocalFunction`).
        source: the stream (a :class:`DynamoDBStreamSource`, a
            :class:`~cdk_replication.local.kinesis.KinesisStreamSource`).
        region: the stream's region.
        account: the stream's account.
        settings: the mapping's settings. Default: Lambda's defaults.
        destination: the on-failure destination (a LocalQueue or a LocalBucket). Default: none (discarded records
            are only counted).
        uuid: the mapping's id. Default: a random UUID.
        clock: the wall clock in epoch seconds, for record ages and the batching window. Default:
            ``time.time``; tests pass a controllable clock.
    """

    def __init__(
        self,
        function: Invokable,
        source: EventSource,
        *,
        region: str,
        account: str,
        settings: MappingSettings | None = None,
        destination: FailureDestination | None = None,
        uuid: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.function = function
        self.source = source
        self.event_source_arn = source.event_source_arn
        self.region = region
        self.account = account
        self.settings = settings or MappingSettings()
        self.destination = destination
        self.uuid = uuid or str(_uuid4())
        #: The execution role Lambda uses to write to the destination (the deploy sets it); ``None``: unchecked.
        self.role_arn: str | None = None
        self.stats = MappingStats()
        self._clock = clock
        self._enabled = self.settings.enabled
        self._paused = False
        self._shards: dict[str, _Shard] = {}
        self._last_discovery = float("-inf")
        self._lock = threading.RLock()
        self._init_poller()
        self._listeners: list[CheckpointListener] = []
        self._timing_listeners: list[TimingListener] = []
        self._duplicate_next = 0
        self._delay_s = 0.0
        self._delays_left: int | None = 0
        self._last_success: list[_Record] | None = None
        self._last_success_shard = ""
        if self._enabled:
            self._discover(initial=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.event_source_arn} -> {self.function.arn})"

    # --- control ---------------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """The mapping's ``Enabled`` setting (see :meth:`enable`/:meth:`disable`)."""
        return self._enabled

    def enable(self) -> None:
        """Enable the mapping (a disabled mapping reads nothing)."""
        with self._lock:
            if not self._enabled:
                self._enabled = True
                self._discover(initial=not self._shards)

    def disable(self) -> None:
        """Disable the mapping; it keeps its position and resumes from there when enabled."""
        with self._lock:
            self._enabled = False

    def pause(self) -> None:
        """Fault hook: stop polling (as if Lambda's pollers were stalled) until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._paused = False

    def add_listener(self, listener: CheckpointListener) -> None:
        """Call ``listener(raw_records, when)`` after every successful checkpoint."""
        self._listeners.append(listener)

    def add_timing_listener(self, listener: TimingListener) -> None:
        """Call ``listener(timings)`` after every successful checkpoint, one :class:`RecordTiming` per record:
        what a lag measurement splits into waiting for a poll, batch assembly and the invocation."""
        self._timing_listeners.append(listener)

    # --- fault hooks ------------------------------------------------------------------------------------

    def duplicate_next_batches(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` successful batches twice (at-least-once delivery)."""
        with self._lock:
            self._duplicate_next += count

    def replay_last_batch(self) -> None:
        """Deliver the last successfully processed batch again before anything else (a lost checkpoint)."""
        with self._lock:
            if self._last_success is None:
                raise RuntimeError("no batch has been processed yet, so there is nothing to replay")
            shard = self._shards[self._last_success_shard]
            # Into the lane of its records (their keys), so that it goes before their lane's next batch.
            lanes = self._lanes(shard)  # a shard rediscovered by replay_from_trim_horizon has none yet
            lane = lanes[lane_of(self._last_success[0].event_record, len(lanes))]
            lane.pending.appendleft(_Batch(list(self._last_success)))

    def replay_from_trim_horizon(self) -> None:
        """Forget every checkpoint and deliver the whole stream again from its oldest record."""
        with self._lock:
            self._shards.clear()
            self._discover(initial=False)

    def delay_invocations(self, seconds: float, count: int | None = None) -> None:
        """Sleep ``seconds`` before each of the next ``count`` invocations (``None``: every one)."""
        with self._lock:
            self._delay_s = seconds
            self._delays_left = count

    def clear_faults(self) -> None:
        """Cancel pending duplicates and delays and resume a paused mapping (replays already queued stay)."""
        with self._lock:
            self._duplicate_next = 0
            self._delay_s = 0.0
            self._delays_left = 0
        self._paused = False

    # --- driving ----------------------------------------------------------------------------------------

    def step(self) -> int:
        """Poll every shard that may be processed once; returns the number of batches dispatched.

        Shards are visited in lineage order, one after the other. Of each shard, every lane (one of
        ``parallelization_factor`` concurrent batches) that is idle and has a retry waiting or a batch ready
        is invoked, all of them at once (in threads when there are several); the step returns once they have
        all finished. Which batches a step forms depends only on the records read and on earlier outcomes,
        never on thread timing, so a driven sequence of steps repeats.
        """
        with self._lock:
            if not self._enabled or self._paused:
                return 0
            now = self._clock()
            if now - self._last_discovery >= SHARD_DISCOVERY_INTERVAL_S or any(
                s.ended and not s.finished for s in self._shards.values()
            ):
                self._discover(initial=False)
            shards = self._ordered_shards()
        invocations = 0
        for shard in shards:
            with self._lock:
                if shard.finished or not self._parent_done(shard) or self._shards.get(shard.shard_id) is not shard:
                    continue
                jobs = self._shard_jobs(shard)
            invocations += self._run_jobs(shard, jobs)
        return invocations

    def is_idle(self) -> bool:
        """True when no record is buffered, in flight or waiting for a retry and every shard has been read to
        its end."""
        with self._lock:
            if not self._enabled or self._paused:
                return True
            # A child waiting for its parent is covered by the parent, which is not idle yet.
            return all(
                s.finished or (all(lane.empty for lane in s.lanes) and s.started and s.caught_up)
                for s in self._shards.values()
                if self._parent_done(s)
            )

    def checkpoints(self) -> dict[str, str | None]:
        """Each shard's checkpoint: the sequence number of the last record before the oldest one not yet
        processed or discarded in any lane (``None``: nothing done yet). A new mapping would start after it."""
        with self._lock:
            return {s.shard_id: s.checkpoint for s in self._shards.values()}

    def run_until_idle(self, timeout_s: float = 60.0) -> MappingStats:
        """Step until every record written so far has been processed or discarded.

        Waits out a batching window in real time. Raises :class:`TimeoutError` (with the counters) if the
        mapping is still busy after ``timeout_s`` seconds, e.g. because a function keeps failing with
        unlimited retries.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            made = self.step()
            if made == 0:
                with self._lock:
                    self._discover(initial=False)  # a shard may have been created since the last look
                    idle = self.is_idle()
                if idle and self.step() == 0 and self.is_idle():
                    return self.stats
                time.sleep(0.01)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r} still busy after {timeout_s:.0f} s: {self.stats}")

    def _polling_interval(self) -> float:
        return self.settings.polling_interval_s

    def _thread_name(self) -> str:
        return f"esm-{self.uuid[:8]}"

    # --- shards -----------------------------------------------------------------------------------------

    def _discover(self, initial: bool) -> None:
        self._last_discovery = self._clock()
        shards = self.source.shards()
        if shards is None:
            # The stream is gone: nothing more will ever be read.
            for shard in self._shards.values():
                shard.finished = True
            return
        for info in shards:
            if info.shard_id in self._shards:
                continue
            shard = _Shard(info.shard_id, info.parent_id, info.adjacent_parent_id)
            self._shards[shard.shard_id] = shard
            if initial and self.settings.starting_position == "LATEST":
                if info.closed:
                    shard.finished = True  # everything in it is older than the mapping
                else:
                    self._open_iterator(shard, "LATEST")

    def _ordered_shards(self) -> list[_Shard]:
        raw = [{"ShardId": s.shard_id, "ParentShardId": s.parent_id} for s in self._shards.values()]
        return [self._shards[r["ShardId"]] for r in shards_in_lineage_order(raw)]

    def _parent_done(self, shard: _Shard) -> bool:
        for parent_id in (shard.parent_id, shard.adjacent_parent_id):
            parent = self._shards.get(parent_id) if parent_id else None
            if parent is not None and not parent.finished:
                return False
        return True

    def _open_iterator(self, shard: _Shard, kind: str, sequence_number: str | None = None) -> None:
        shard.iterator = self.source.iterator(shard.shard_id, kind, sequence_number)
        shard.started = True
        if shard.iterator is None:
            shard.ended = True

    def _fill(self, shard: _Shard) -> None:
        """Read until every lane could fill a batch (``batch_size`` x factor records buffered), a read returns
        less than it asked for (the tip of the shard) or the shard has nothing new; each record goes to the lane
        its item key hashes to."""
        if not shard.started:
            self._open_iterator(shard, "TRIM_HORIZON")
        capacity = self.settings.batch_size * len(shard.lanes)
        while shard.iterator and shard.buffered < capacity:
            try:
                limit = min(MAX_RECORDS_PER_READ, capacity - shard.buffered)
                records, shard.iterator = self.source.read(shard.shard_id, shard.iterator, limit)
            except IteratorExpired:
                # Iterators expire after 15 minutes; continue right after the last record read.
                if shard.last_read_seq:
                    self._open_iterator(shard, "AFTER_SEQUENCE_NUMBER", shard.last_read_seq)
                else:
                    self._open_iterator(shard, "TRIM_HORIZON")
                continue
            except DataTrimmed:
                self._open_iterator(shard, "TRIM_HORIZON")
                continue
            if shard.iterator is None:
                shard.ended = True
            shard.caught_up = not records
            if not records:
                break
            now = self._clock()
            for raw in records:
                made = self.source.to_record(raw, shard.shard_id, now)
                size = len(json.dumps(made.event_record, separators=(",", ":")))
                record = _Record(raw, made.event_record, size, made.seq, made.created, now)
                shard.unfinished.append(record)
                self._enqueue(shard, record, now)
                shard.last_read_seq = made.seq
            if len(records) < limit:
                # At the tip of the shard: a steady stream never returns an empty read, so reading on until
                # batch_size records are buffered would hold the first one for batch_size / rate seconds
                # (2 s at 1,000 records and 500 writes/s). Lambda invokes with what a poll read; a full page (a
                # backlog) reads on.
                break

    def _enqueue(self, shard: _Shard, record: _Record, now: float) -> None:
        record.lane = lane_of(record.event_record, len(shard.lanes))
        lane = shard.lanes[record.lane]
        lane.buffer.append(record)
        if lane.first_buffered_at is None:
            lane.first_buffered_at = now

    def _lanes(self, shard: _Shard) -> list[_Lane]:
        """The shard's lanes, one per concurrent batch; rebuilt when the factor changed (an update) once no
        batch of the shard is in flight or waiting, so that no key is ever in two lanes at once."""
        factor = self.settings.parallelization_factor
        if len(shard.lanes) != factor and not any(lane.busy or lane.pending for lane in shard.lanes):
            # Nothing in flight or waiting: every unfinished record is in a lane's buffer.
            shard.lanes = [_Lane() for _ in range(factor)]
            for record in shard.unfinished:
                self._enqueue(shard, record, record.read_at)
        return shard.lanes

    # --- batches ----------------------------------------------------------------------------------------

    def _shard_jobs(self, shard: _Shard) -> list[tuple[_Lane, _Batch]]:
        """The batches to invoke now, at most one per idle lane: a retry first, else a ready new batch."""
        free = [lane for lane in self._lanes(shard) if not lane.busy]
        jobs = [(lane, lane.pending.popleft()) for lane in free if lane.pending]
        if len(jobs) < len(free):
            self._fill(shard)
            waiting = {id(lane) for lane, _ in jobs}
            for lane in free:
                batch = None if id(lane) in waiting else self._ready_batch(shard, lane)
                if batch is not None:
                    jobs.append((lane, batch))
        if not jobs and shard.ended and all(lane.empty for lane in shard.lanes):
            shard.finished = True
        for lane, _ in jobs:
            lane.busy = True
        return jobs

    def _ready_batch(self, shard: _Shard, lane: _Lane) -> _Batch | None:
        """The lane's next batch if it is full, the batching window has passed or the shard is read to its end."""
        if not lane.buffer:
            return None
        _, full = self._take_batch(lane, dry_run=True)
        window = self.settings.maximum_batching_window_s
        waited = self._clock() - (lane.first_buffered_at or self._clock())
        if not (full or window == 0 or shard.ended or waited >= window):
            return None
        records, _ = self._take_batch(lane, dry_run=False)
        lane.first_buffered_at = self._clock() if lane.buffer else None
        return _Batch(records)

    def _run_jobs(self, shard: _Shard, jobs: list[tuple[_Lane, _Batch]]) -> int:
        """Invoke the jobs' batches, concurrently when there are several (each lane its own invocation, as
        Lambda runs each concurrent batch of a shard in its own invocation); returns when all are done."""
        if len(jobs) == 1:
            self._run_job(shard, *jobs[0])
        elif jobs:
            errors: list[BaseException] = []

            def run(lane: _Lane, batch: _Batch) -> None:
                try:
                    self._run_job(shard, lane, batch)
                except BaseException as exc:  # noqa: BLE001 - raised again in the stepping thread
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=job, name=f"{self._thread_name()}-lane", daemon=True)
                       for job in jobs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
        return len(jobs)

    def _run_job(self, shard: _Shard, lane: _Lane, batch: _Batch) -> None:
        try:
            self._process(shard, lane, batch)
        finally:
            with self._lock:
                lane.busy = False

    def _take_batch(self, lane: _Lane, dry_run: bool) -> tuple[list[_Record], bool]:
        """The next batch from the lane's buffer and whether it is full (by count or by payload size)."""
        taken: list[_Record] = []
        payload = len('{"Records":[]}')
        for record in lane.buffer:
            if len(taken) >= self.settings.batch_size or (taken and payload + record.size + 1 > MAX_PAYLOAD_BYTES):
                break
            taken.append(record)
            payload += record.size + 1
        full = len(taken) < len(lane.buffer) or len(taken) >= self.settings.batch_size
        if not dry_run:
            for _ in taken:
                lane.buffer.popleft()
        return taken, full

    def _process(self, shard: _Shard, lane: _Lane, batch: _Batch) -> None:
        """One invocation of one lane's batch; the mapping's lock is held for everything but the call."""
        self._maybe_delay()
        with self._lock:
            if not self._drop_expired(shard, lane, batch):
                return
            event = {"Records": [r.event_record for r in batch.records]}
        result = self._invoke(event, batch)
        with self._lock:
            duplicate = self._settle(shard, lane, batch, result)
        if duplicate:
            self._invoke(event, _Batch(batch.records))

    def _drop_expired(self, shard: _Shard, lane: _Lane, batch: _Batch) -> bool:
        """Discard the records older than ``maximum_record_age_s``; False if none is left to invoke."""
        if self.settings.maximum_record_age_s < 0:
            return True
        now = self._clock()
        expired = [r for r in batch.records if now - r.created > self.settings.maximum_record_age_s]
        if expired:
            # Stream records are in time order, so the expired ones are the oldest: a prefix.
            self._discard(shard, _Batch(expired, batch.attempts, batch.retries, batch.last_result),
                          CONDITION_RECORD_AGE_EXCEEDED)
            batch.records = batch.records[len(expired):]
        return bool(batch.records)

    def _settle(self, shard: _Shard, lane: _Lane, batch: _Batch, result: InvocationResult) -> bool:
        """Checkpoint, retry, bisect or discard after an invocation; True to deliver the batch once more
        (the duplicate-delivery fault)."""
        if result.throttled:
            # Lambda retries a throttled batch of a stream until it succeeds or its records expire; a throttle
            # is not a function error and uses no retry.
            self.stats.throttles += 1
            lane.pending.appendleft(batch)
            return False
        if result.function_error:
            self.stats.function_errors += 1
            self.stats.last_error = f"{result.error_type}: {result.error_message}"
            self._failed(shard, lane, batch, allow_bisect=True)
            return False
        if self.settings.report_batch_item_failures:
            verdict = _first_failed_index(result.payload, [r.seq for r in batch.records], self.source.item_key)
            if verdict is _MALFORMED:
                self.stats.malformed_responses += 1
                self._failed(shard, lane, batch, allow_bisect=False)
                return False
            if verdict is not None:
                assert isinstance(verdict, int)
                self.stats.partial_failures += 1
                done, rest = batch.records[:verdict], batch.records[verdict:]
                if done:
                    self._checkpoint(shard, lane, done, batch)
                self._failed(shard, lane, _Batch(rest, batch.attempts, batch.retries, result), allow_bisect=False)
                return False
        self._checkpoint(shard, lane, batch.records, batch)
        self.stats.batches_succeeded += 1
        if self._duplicate_next > 0:
            self._duplicate_next -= 1
            self.stats.duplicates += 1
            return True
        return False

    def _invoke(self, event: dict[str, Any], batch: _Batch) -> InvocationResult:
        """Call the function (without the mapping's lock: lanes run concurrently) and count the invocation."""
        batch.invoked_at = self._clock()
        result = self.function.invoke(event)
        with self._lock:
            if result.throttled:
                return result
            batch.attempts += 1
            batch.last_result = result
            self.stats.invocations += 1
            self.stats.records_delivered += len(batch.records)
            if batch.records:
                self.stats.iterator_age_ms = max(0.0, (self._clock() - batch.records[-1].created) * 1000)
        return result

    def _maybe_delay(self) -> None:
        with self._lock:
            if self._delay_s <= 0 or self._delays_left == 0:
                return
            if self._delays_left is not None:
                self._delays_left -= 1
            delay = self._delay_s
        time.sleep(delay)

    def _failed(self, shard: _Shard, lane: _Lane, batch: _Batch, allow_bisect: bool) -> None:
        if allow_bisect and self.settings.bisect_batch_on_function_error and len(batch.records) > 1:
            # Splitting does not use the retry quota; the halves run in order, first half first, in the lane
            # of the batch (a lane's keys never move to another lane, whatever the factor).
            half = len(batch.records) // 2
            first = _Batch(batch.records[:half], batch.attempts, batch.retries, batch.last_result)
            second = _Batch(batch.records[half:], batch.attempts, batch.retries, batch.last_result)
            lane.pending.appendleft(second)
            lane.pending.appendleft(first)
            self.stats.bisections += 1
            return
        batch.retries += 1
        limit = self.settings.maximum_retry_attempts
        if limit >= 0 and batch.retries > limit:
            self._discard(shard, batch, CONDITION_RETRIES_EXHAUSTED)
            return
        lane.pending.appendleft(batch)
        self.stats.retries += 1

    def _finish(self, shard: _Shard, records: list[_Record]) -> None:
        """Mark ``records`` done and move the shard's checkpoint up to the oldest record still unfinished."""
        for record in records:
            record.done = True
        while shard.unfinished and shard.unfinished[0].done:
            shard.checkpoint = shard.unfinished.popleft().seq

    def _checkpoint(self, shard: _Shard, lane: _Lane, records: list[_Record], batch: _Batch | None = None) -> None:
        self._finish(shard, records)
        self.stats.records_processed += len(records)
        self._last_success = records
        self._last_success_shard = shard.shard_id
        if self._listeners:
            now = time.time()
            raws = [r.raw for r in records]
            for listener in self._listeners:
                listener(raws, now)
        if self._timing_listeners and batch is not None:
            finished = self._clock()
            timings = [RecordTiming(r.raw, r.created, r.read_at, batch.invoked_at, finished, batch.attempts)
                       for r in records]
            for timing_listener in self._timing_listeners:
                timing_listener(timings)

    def _discard(self, shard: _Shard, batch: _Batch, condition: str) -> None:
        records = batch.records
        self._finish(shard, records)
        self.stats.records_discarded += len(records)
        if self.destination is None:
            return
        when = self._clock()
        try:
            self.destination.deliver_on_failure(
                self._on_failure_record(shard.shard_id, batch, condition, when),
                event={"Records": [r.event_record for r in records]}, mapping_uuid=self.uuid,
                shard_id=shard.shard_id, when=when, principal_arn=self.role_arn)
        except BucketAccessDenied as error:
            self.stats.destination_delivery_failures += 1
            self.stats.last_error = f"AccessDenied: {error}"
            return
        self.stats.on_failure_records += 1

    def _on_failure_record(self, shard_id: str, batch: _Batch, condition: str, when: float) -> dict[str, Any]:
        """The invocation record Lambda sends to an on-failure destination for discarded records."""
        result = batch.last_result
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result is not None and result.function_error:
            response["functionError"] = "Unhandled"
        records = batch.records
        return {
            "requestContext": {
                "requestId": result.request_id if result else str(_uuid4()),
                "functionArn": self.function.arn,
                "condition": condition,
                "approximateInvokeCount": batch.attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(when, millis=True),
            self.source.batch_info_key: self.source.batch_info(
                shard_id, records[0].source_record, records[-1].source_record, len(records)),
        }


class StreamEventSourceMapping(EventSourceMapping):
    """Lambda's event source mapping from one DynamoDB stream to one function.

    Args:
        function: the function to invoke (a :class:`~cdk_replication.local.LocalFunction`).
        stream_arn: the stream ARN as DynamoDB Local reports it (``LatestStreamArn`` of the table).
        streams_client: a boto3 ``dynamodbstreams`` client for the table's region and account.
        region: the table's region (the records' ``awsRegion``).
        account: the table's account (in the records' ``eventSourceARN``).
        settings, destination, uuid, clock: as for :class:`EventSourceMapping`.
    """

    def __init__(
        self,
        function: Invokable,
        stream_arn: str,
        *,
        streams_client: Any,
        region: str,
        account: str,
        settings: MappingSettings | None = None,
        destination: FailureDestination | None = None,
        uuid: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local_stream_arn = stream_arn
        super().__init__(function, DynamoDBStreamSource(stream_arn, streams_client, region, account),
                         region=region, account=account, settings=settings, destination=destination,
                         uuid=uuid, clock=clock)


_MALFORMED = object()


def _first_failed_index(payload: Any, sequence_numbers: list[str],
                        item_key: Callable[[Any], Hashable | None]) -> int | None | object:
    """Index of the lowest reported failure, None for success, or ``_MALFORMED`` (whole batch failed).

    ``item_key`` turns an identifier (and each sequence number) into what is compared: the string itself for
    DynamoDB, the integer for Kinesis (whose sequence numbers are decimal strings)."""
    if payload is None or payload == {} or payload == "":
        return None
    if not isinstance(payload, dict):
        return _MALFORMED
    failures = payload.get("batchItemFailures")
    if failures is None or failures == []:
        return None
    if not isinstance(failures, list):
        return _MALFORMED
    position = {item_key(seq): i for i, seq in enumerate(sequence_numbers)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        key = item_key(identifier)
        if key is None or key not in position:
            return _MALFORMED
        indexes.append(position[key])
    return min(indexes)


def item_key_text(event_record: dict[str, Any]) -> str:
    """The key that decides a record's lane: a Kinesis record's partition key; a DynamoDB record's ``Keys``
    (partition and sort key: Lambda keeps order per item) as canonical JSON."""
    kinesis = event_record.get("kinesis")
    if kinesis is not None:
        return str(kinesis.get("partitionKey", ""))
    return json.dumps(event_record.get("dynamodb", {}).get("Keys"), sort_keys=True, separators=(",", ":"))


def lane_of(event_record: dict[str, Any], factor: int) -> int:
    """The lane (0 .. ``factor`` - 1) of a record: a stable hash (MD5, as Kinesis hashes partition keys, not
    Python's per-process salted ``hash``) of :func:`item_key_text`, so runs and replays form the same batches."""
    if factor <= 1:
        return 0
    digest = hashlib.md5(item_key_text(event_record).encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % factor


def _iso(epoch_s: float, millis: bool = False) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid4() -> uuid.UUID:
    return uuid.uuid4()
