"""DynamoDB's "Kinesis streaming destination", locally: a table's changes written to a Kinesis stream.

On AWS a table with a Kinesis streaming destination (``KinesisStreamSpecification``) has DynamoDB write every
item change to the Kinesis stream as one record. DynamoDB Local cannot do that, so
:class:`KinesisStreamingDestination` plays DynamoDB's part: it reads the table's DynamoDB Local stream (real
stream records) and puts each change on the Kinesis stream (:class:`~cdk_replication.local.kinesis.LocalKinesis`)
in the format of Kinesis Data Streams for DynamoDB.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdk_replication.local.event_source_mapping import (
    SHARD_DISCOVERY_INTERVAL_S,
    DataTrimmed,
    DynamoDBStreamSource,
    IteratorExpired,
)
from cdk_replication.local.kinesis import parse_kinesis_stream_arn
from cdk_replication.local.poller import BackgroundPoller
from cdk_replication.local.stream_records import event_name_and_identity, shards_in_lineage_order, to_json_image

PRECISIONS = {"MICROSECOND": 1_000_000, "MILLISECOND": 1_000}


@dataclass
class BridgeStats:
    """Counters of one bridge.

    Attributes:
        records_read: DynamoDB stream records read (each one item change).
        records_published: ``PutRecord`` calls, duplicates included.
        duplicates: extra copies published by the duplicate fault.
        reorders: records held back and published after a later record of the same item.
    """

    records_read: int = 0
    records_published: int = 0
    duplicates: int = 0
    reorders: int = 0


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    started: bool = False
    ended: bool = False
    last_seq: str | None = None


class KinesisStreamingDestination(BackgroundPoller):
    """Writes every change of one table's DynamoDB stream to a Kinesis stream, as DynamoDB does on AWS.

    Each stream record becomes one ``PutRecord`` whose data is the JSON (UTF-8) of Kinesis Data Streams for
    DynamoDB::

        {"awsRegion", "eventID", "eventName", "userIdentity", "recordFormat": "application/json",
         "tableName", "dynamodb": {"ApproximateCreationDateTime", "Keys", "NewImage", "OldImage",
         "SizeBytes"}, "eventSource": "aws:dynamodb"}

    Images are in DynamoDB JSON exactly as AWS sends them (base64 binaries, ``{"M": {}}`` for empty maps);
    there is no ``SequenceNumber`` or ``StreamViewType``. The partition key is the hex MD5 of the item's key
    (canonical JSON), so the records of one item land on one shard.

    **Timestamps.** ``ApproximateCreationDateTime`` is in epoch microseconds (``ApproximateCreationDateTime
    Precision: MICROSECOND``; milliseconds with ``MILLISECOND``). DynamoDB Local stamps stream records to the
    minute, which says nothing about the order of writes, while AWS's microsecond stamps do reflect the real
    order of one item's writes (consumers of Kinesis use them to put an item's records back in order, since
    Kinesis may deliver them out of order). So the bridge stamps each record when it reads it, in stream
    order, with ``max(now, previous stamp + 1)``: strictly increasing per table, hence per item. In
    milliseconds it uses ``max(now, previous stamp)``: writes within one millisecond share a stamp, as on AWS.

    **Faults.** AWS documents that with Kinesis the records of an item "might appear in a different sequence
    than the item modifications occurred" and "might appear more than once". Both can be injected,
    deterministically from ``seed``: ``duplicate_probability`` publishes a record twice (same data, same
    ``eventID``); ``reorder_probability`` holds a record back and publishes it right after the next record
    of the same item (so the later write arrives first), keeping its original timestamp. A held record whose
    item is not written again is published when the table stream has nothing new. :meth:`duplicate_next`
    and :meth:`reorder_next` arm the faults explicitly for the next records. Default: no faults.

    Drive it with :meth:`step` / :meth:`run_until_idle`, or in a background thread with :meth:`start` /
    :meth:`stop`.

    Args:
        table_name: the table's name (``tableName``).
        stream_arn: the table's stream ARN as DynamoDB Local reports it (``LatestStreamArn``).
        streams_client: a boto3 ``dynamodbstreams`` client for the table's region and account.
        kinesis_stream_arn: the destination stream's ARN.
        kinesis_client: a boto3 ``kinesis`` client for that stream's region and account.
        region: the table's region (``awsRegion``).
        account: the table's account.
        precision: ``MICROSECOND`` (default) or ``MILLISECOND``.
        starting_position: ``TRIM_HORIZON`` (every record still in the table's stream; default) or
            ``LATEST`` (only changes made after the bridge was created, as when the destination is enabled
            on a table that already has data).
        duplicate_probability: chance that a record is published twice. Default: 0.
        reorder_probability: chance that a record is held back behind the next record of its item. Default: 0.
        seed: seed of the fault decisions. Default: 0.
        clock: the wall clock in epoch seconds (for the timestamps). Default: ``time.time``.
        polling_interval_s: pause between polls of a quiet stream in background mode. Default: 0.25.
    """

    def __init__(
        self,
        table_name: str,
        stream_arn: str,
        *,
        streams_client: Any,
        kinesis_stream_arn: str,
        kinesis_client: Any,
        region: str,
        account: str,
        precision: str = "MICROSECOND",
        starting_position: str = "TRIM_HORIZON",
        duplicate_probability: float = 0.0,
        reorder_probability: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        polling_interval_s: float = 0.25,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; use one of {sorted(PRECISIONS)}")
        if starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(f"starting_position={starting_position!r}; use TRIM_HORIZON or LATEST")
        for name, p in (("duplicate_probability", duplicate_probability), ("reorder_probability", reorder_probability)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}={p!r} is not a probability")
        parsed = parse_kinesis_stream_arn(kinesis_stream_arn)
        if parsed is None:
            raise ValueError(f"not a Kinesis stream ARN: {kinesis_stream_arn!r}")
        self.table_name = table_name
        self.region = region
        self.kinesis_stream_arn = kinesis_stream_arn
        self.kinesis_stream_name = parsed[2]
        self.precision = precision
        self.duplicate_probability = duplicate_probability
        self.reorder_probability = reorder_probability
        self.stats = BridgeStats()
        self._source = DynamoDBStreamSource(stream_arn, streams_client, region, account)
        self._kinesis = kinesis_client
        self._clock = clock
        self._polling_interval_s = polling_interval_s
        self._rng = random.Random(seed)
        self._units = PRECISIONS[precision]
        self._last_stamp = 0
        self._last_discovery = float("-inf")
        self._shards: dict[str, _Shard] = {}
        self._held: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
        self._duplicate_next = 0
        self._reorder_next = 0
        self._caught_up = False
        self._lock = threading.RLock()
        self._init_poller()
        self._discover(latest=starting_position == "LATEST")

    def __repr__(self) -> str:
        return f"KinesisStreamingDestination({self.table_name} -> {self.kinesis_stream_arn})"

    # --- fault hooks ------------------------------------------------------------------------------------

    def duplicate_next(self, count: int = 1) -> None:
        """Publish each of the next ``count`` records twice."""
        with self._lock:
            self._duplicate_next += count

    def reorder_next(self, count: int = 1) -> None:
        """Hold each of the next ``count`` records back until after the next record of the same item."""
        with self._lock:
            self._reorder_next += count

    def release_held(self) -> int:
        """Publish every held-back record now; returns how many."""
        with self._lock:
            held = [entry for entries in self._held.values() for entry in entries]
            self._held.clear()
            for data, partition_key in held:
                self._put(data, partition_key)
            return len(held)

    def clear_faults(self) -> None:
        """Cancel armed faults and set both probabilities to 0 (held records stay held until released)."""
        with self._lock:
            self._duplicate_next = self._reorder_next = 0
            self.duplicate_probability = self.reorder_probability = 0.0

    @property
    def held(self) -> int:
        """Records held back by the reorder fault, not yet published."""
        return sum(len(v) for v in self._held.values())

    # --- driving ----------------------------------------------------------------------------------------

    def step(self) -> int:
        """Publish what is new in the table's stream; returns the number of ``PutRecord`` calls made.

        When nothing is new, records held back by the reorder fault are published.
        """
        with self._lock:
            raws = self._read_new()
            published = self.stats.records_published
            for raw in raws:
                self._publish(raw)
            self._caught_up = not raws
            if not raws:
                self.release_held()
            return self.stats.records_published - published

    def is_idle(self) -> bool:
        """True when the last step found nothing new in the table's stream and nothing is held back."""
        with self._lock:
            return self._caught_up and not self._held

    def run_until_idle(self, timeout_s: float = 60.0) -> BridgeStats:
        """Step until the table's stream has nothing new and nothing is held back."""
        deadline = time.monotonic() + timeout_s
        while self.step() or not self.is_idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r} still busy after {timeout_s:.0f} s: {self.stats}")
        return self.stats

    def _polling_interval(self) -> float:
        return self._polling_interval_s

    def _thread_name(self) -> str:
        return f"kds-{self.table_name[:16]}"

    # --- reading ----------------------------------------------------------------------------------------

    def _discover(self, latest: bool = False) -> None:
        self._last_discovery = self._clock()
        for info in self._source.shards() or []:
            if info.shard_id in self._shards:
                continue
            shard = _Shard(info.shard_id, info.parent_id)
            self._shards[info.shard_id] = shard
            if latest:
                if info.closed:
                    shard.ended = shard.started = True
                else:
                    self._open(shard, "LATEST")

    def _open(self, shard: _Shard, kind: str, sequence_number: str | None = None) -> None:
        shard.iterator = self._source.iterator(shard.shard_id, kind, sequence_number)
        shard.started = True
        shard.ended = shard.iterator is None

    def _read_new(self) -> list[dict[str, Any]]:
        """Every record not read yet, shard by shard in lineage order (a child after its parent's end)."""
        # Listing shards about once a second, as the mapping does; at once when every known shard has ended.
        if (self._clock() - self._last_discovery >= SHARD_DISCOVERY_INTERVAL_S
                or all(shard.ended for shard in self._shards.values())):
            self._discover()
        raws: list[dict[str, Any]] = []
        order = shards_in_lineage_order([{"ShardId": s.shard_id, "ParentShardId": s.parent_id}
                                         for s in self._shards.values()])
        for entry in order:
            shard = self._shards[entry["ShardId"]]
            parent = self._shards.get(shard.parent_id) if shard.parent_id else None
            if shard.ended or (parent is not None and not parent.ended):
                continue
            if not shard.started:
                self._open(shard, "TRIM_HORIZON")
            while shard.iterator:
                try:
                    records, shard.iterator = self._source.read(shard.shard_id, shard.iterator, 1000)
                except IteratorExpired:
                    # Continue right after the last record read.
                    self._open(shard, "AFTER_SEQUENCE_NUMBER" if shard.last_seq else "TRIM_HORIZON", shard.last_seq)
                    continue
                except DataTrimmed:
                    self._open(shard, "TRIM_HORIZON")
                    continue
                shard.ended = shard.iterator is None
                if not records:
                    break
                raws.extend(records)
                shard.last_seq = records[-1]["dynamodb"]["SequenceNumber"]
        self.stats.records_read += len(raws)
        return raws

    # --- publishing -------------------------------------------------------------------------------------

    def kinesis_record(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The Kinesis record data (as a dict) for one boto3 stream record; stamps it (see the class doc)."""
        ddb = raw["dynamodb"]
        now = int(self._clock() * self._units)
        # Microseconds: strictly increasing (AWS's stamps order one item's writes). Milliseconds: never
        # decreasing, and equal for writes within one millisecond, as on AWS, where consumers must cope.
        step = 1 if self._units == PRECISIONS["MICROSECOND"] else 0
        self._last_stamp = max(now, self._last_stamp + step)
        body: dict[str, Any] = {"ApproximateCreationDateTime": self._last_stamp}
        for image in ("Keys", "NewImage", "OldImage"):
            if image in ddb:
                body[image] = to_json_image(ddb[image])
        body["SizeBytes"] = ddb["SizeBytes"]
        event_name, identity = event_name_and_identity(raw)
        return {
            "awsRegion": self.region,
            "eventID": str(uuid.uuid4()),
            "eventName": event_name,
            "userIdentity": identity,
            "recordFormat": "application/json",
            "tableName": self.table_name,
            "dynamodb": body,
            "eventSource": "aws:dynamodb",
        }

    def _publish(self, raw: dict[str, Any]) -> None:
        record = self.kinesis_record(raw)
        key_json = json.dumps(record["dynamodb"]["Keys"], sort_keys=True, separators=(",", ":"))
        partition_key = hashlib.md5(key_json.encode()).hexdigest()
        data = json.dumps(record, separators=(",", ":")).encode("utf-8")
        # Draw both decisions for every record, so that one seed gives one fault schedule.
        duplicate = self._rng.random() < self.duplicate_probability
        reorder = self._rng.random() < self.reorder_probability
        if self._duplicate_next > 0:
            self._duplicate_next -= 1
            duplicate = True
        if self._reorder_next > 0:
            self._reorder_next -= 1
            reorder = True
        held = self._held.pop(partition_key, [])
        if reorder and not held:
            self._held[partition_key].append((data, partition_key))
            self.stats.reorders += 1
            if duplicate:
                self._held[partition_key].append((data, partition_key))
                self.stats.duplicates += 1
            return
        self._put(data, partition_key)
        if duplicate:
            self._put(data, partition_key)
            self.stats.duplicates += 1
        for held_data, held_key in held:  # the earlier write of this item arrives after this later one
            self._put(held_data, held_key)

    def _put(self, data: bytes, partition_key: str) -> None:
        self._kinesis.put_record(StreamName=self.kinesis_stream_name, Data=data, PartitionKey=partition_key)
        self.stats.records_published += 1
