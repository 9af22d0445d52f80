"""A whole redrive: read the failure records, find their keys, resync each key once, mark what is settled.

Everything is read and checked before the first write (a bad record ends the run with nothing written).
Then each key named by any record is resynced once (however many records name it), and a record is marked
redriven as soon as every one of its keys is settled in every target, so an interrupted run loses nothing:
the next run skips what is marked and resyncs the rest.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

from cdk_replication.cli.items import Item, KeyId
from cdk_replication.cli.progress import Progress
from cdk_replication.cli.redrive.changes import KeyChange, changes_of
from cdk_replication.cli.redrive.failure_records import FailureRecord, NotAFailureRecord, parse_failure_record
from cdk_replication.cli.redrive.locations import Envelope, Location
from cdk_replication.cli.redrive.resync import SETTLED_OUTCOMES, KeyResyncer
from cdk_replication.cli.redrive.stream_ranges import LostRange, RangeReader
from cdk_replication.cli.tables import TableHandle


@dataclass
class RedriveResult:
    """What a redrive found and did.

    Attributes:
        location: where the records were read.
        targets: the targets' labels.
        already_redriven: records skipped because a marker says they were redriven.
        skipped: objects that are not failure records, ``(name, why)``.
        records: failure records read (not marked before this run).
        lost: ranges of records without payload that the stream no longer holds.
        unreadable: ``(record name, why)`` for each stream record whose keys could not be read; its failure
            record stays unmarked (the run goes on with the others).
        redriven: records marked redriven by this run (0 in a dry run).
        settled_records: records whose keys all ended settled (in a dry run: were already in sync).
        outcomes: ``(key, target label) -> (outcome, reason)``.
    """

    location: str
    dry_run: bool
    targets: list[str]
    already_redriven: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    records: int = 0
    lost: list[tuple[str, LostRange]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    redriven: int = 0
    settled_records: int = 0
    keys: dict[KeyId, Item] = field(default_factory=dict)
    outcomes: dict[tuple[KeyId, str], tuple[str, str | None]] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0
    #: Lines for the user (e.g. a record whose payload could not be used).
    notes: list[str] = field(default_factory=list)

    #: Held by whoever writes ``outcomes`` while others may read it (the workers, the progress thread).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def counts(self) -> Counter[str]:
        """Outcome -> key-and-target pairs; safe while workers record outcomes (read from a snapshot taken
        under :attr:`lock`: copying a dict is one step, iterating it is not)."""
        with self.lock:
            outcomes = list(self.outcomes.values())
        return Counter(outcome for outcome, _ in outcomes)

    @property
    def complete(self) -> bool:
        """Every record read is settled and nothing is lost or unreadable."""
        return (not self.interrupted and not self.lost and not self.unreadable
                and self.settled_records == self.records)


@dataclass
class _Plan:
    """The records read, and for each key its failed records in stream order and the records naming it."""

    records: list[tuple[Envelope, FailureRecord, LostRange | None]] = field(default_factory=list)
    changes: dict[KeyId, list[KeyChange]] = field(default_factory=dict)
    records_of_key: dict[KeyId, list[int]] = field(default_factory=dict)
    #: Records (indexes into ``records``) with a stream record whose keys could not be read: never marked.
    unreadable: set[int] = field(default_factory=set)


def _records_of(failure: FailureRecord, reader: RangeReader,
                result: RedriveResult) -> tuple[list[dict[str, Any]], LostRange | None]:
    """The batch's records: its payload's, or re-read from the stream when it has none (or an unusable one),
    or when it holds fewer records than the batch had (``batchSize``): a payload is not trusted to name every
    key then. If that range is gone, the payload's records are still used, and the range is reported lost."""
    records, size = failure.records, failure.batch.batch_size
    if failure.payload_problem:
        result.notes.append(f"{failure.name}: {failure.payload_problem}; its range is read from the stream")
    if records is not None and (size is None or len(records) >= size):
        return records, None
    if records is not None:
        result.notes.append(f"{failure.name}: its payload holds {len(records)} of the batch's {size} records; "
                            "its range is read from the stream")
    reread = reader.read(failure.batch)
    if reread.lost is not None and records is not None:
        return records, reread.lost
    return reread.records, reread.lost


def _plan(location: Location, source: TableHandle, reader: RangeReader, result: RedriveResult) -> _Plan:
    """Read and check every record (raises :class:`BadInput` before anything is written)."""
    listing = location.read()
    result.already_redriven = listing.already_redriven
    plan = _Plan()
    for envelope in listing.envelopes:
        try:
            failure = parse_failure_record(envelope.name, envelope.body)
        except NotAFailureRecord as exc:
            result.skipped.append((envelope.name, str(exc)))
            continue
        records, lost = _records_of(failure, reader, result)
        index = len(plan.records)
        plan.records.append((envelope, failure, lost))
        changes, unreadable = changes_of(failure, records, source.info)
        if unreadable:
            plan.unreadable.add(index)
            result.unreadable += [(failure.name, why) for why in unreadable]
        for change in changes:
            plan.changes.setdefault(change.key_id, []).append(change)
            if index not in plan.records_of_key.setdefault(change.key_id, []):
                plan.records_of_key[change.key_id].append(index)
        if lost is not None:
            result.lost.append((failure.name, lost))
    for changes in plan.changes.values():
        changes.sort(key=lambda change: change.order)
    result.records = len(plan.records)
    result.keys = {key_id: changes[0].key for key_id, changes in plan.changes.items()}
    return plan


class _Marker:
    """Marks each record once all its keys are settled (called from the main thread only)."""

    def __init__(self, location: Location, plan: _Plan, result: RedriveResult) -> None:
        self.location = location
        self.plan = plan
        self.result = result
        self.pending = Counter({i: 0 for i in range(len(plan.records))})
        for indexes in plan.records_of_key.values():
            self.pending.update(indexes)
        self.unsettled: set[int] = {i for i, (_, _, lost) in enumerate(plan.records) if lost is not None}
        self.unsettled |= plan.unreadable
        self.outcomes: dict[int, Counter[str]] = {i: Counter() for i in range(len(plan.records))}
        self.marked: set[int] = set()

    def start(self) -> None:
        """Settle the records that name no key (all their records were other tables')."""
        for index, count in list(self.pending.items()):
            if count == 0:
                self._finish(index)

    def key_done(self, key_id: KeyId, outcomes: list[tuple[str, str | None]]) -> None:
        for index in self.plan.records_of_key[key_id]:
            self.outcomes[index].update(outcome for outcome, _ in outcomes)
            if any(outcome not in SETTLED_OUTCOMES for outcome, _ in outcomes):
                self.unsettled.add(index)
            self.pending[index] -= 1
            if self.pending[index] == 0:
                self._finish(index)

    def _finish(self, index: int) -> None:
        if index in self.unsettled:
            return
        self.result.settled_records += 1
        if self.result.dry_run:
            return
        envelope, failure, _ = self.plan.records[index]
        summary = {"redrivenAt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "record": failure.name, "targets": self.result.targets, "outcomes": dict(self.outcomes[index])}
        self.location.mark(envelope, summary)
        self.marked.add(index)
        self.result.redriven += 1


def _resync_all(plan: _Plan, resyncer: KeyResyncer, marker: _Marker, workers: int, result: RedriveResult) -> None:
    """Resync every key in ``workers`` threads; records are marked as their keys finish."""

    def one(key_id: KeyId) -> tuple[KeyId, list[tuple[str, str | None]]]:
        changes = plan.changes[key_id]
        outcomes = resyncer.resync(key_id, changes[0].key, [c.record for c in changes],
                                   kinesis=any(c.kinesis for c in changes))
        with result.lock:
            for target, outcome in zip(result.targets, outcomes):
                result.outcomes[(key_id, target)] = outcome
        return key_id, outcomes

    pool = ThreadPoolExecutor(workers, thread_name_prefix="redrive")
    try:
        pending: set[Future[Any]] = {pool.submit(one, key_id) for key_id in plan.changes}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                marker.key_done(*future.result())
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        # Keys not started are dropped (a marker-write error or Ctrl-C ends the run); those under way finish,
        # so no write lands after the report. Their records stay unmarked: the next run takes them.
        pool.shutdown(wait=True, cancel_futures=True)


def run_redrive(location: Location, source: TableHandle, resyncer: KeyResyncer, reader: RangeReader, *,
                workers: int, dry_run: bool, progress_stream: TextIO | None = None,
                show_progress: bool = True) -> RedriveResult:
    """Redrive every unmarked failure record at ``location`` into ``resyncer``'s targets.

    Raises:
        BadInput: a record cannot be used (nothing has been written then).
    """
    started = time.monotonic()
    result = RedriveResult(location.description, dry_run, [t.info.label() for t in resyncer.targets])
    try:
        _run(location, source, resyncer, reader, result, workers, progress_stream, show_progress)
    finally:  # on any way out (an error, Ctrl-C while reading): SQS messages not deleted are visible again
        location.release()
    result.seconds = time.monotonic() - started
    return result


def _run(location: Location, source: TableHandle, resyncer: KeyResyncer, reader: RangeReader, result: RedriveResult,
         workers: int, progress_stream: TextIO | None, show_progress: bool) -> None:
    plan = _plan(location, source, reader, result)
    marker = _Marker(location, plan, result)

    def render() -> str:
        counts = result.counts
        settled = sum(n for outcome, n in counts.items() if outcome in SETTLED_OUTCOMES)
        return (f"redrive {source.info.label()}: {result.records:,} records read, {len(result.keys):,} keys; "
                f"resynced {settled:,}/{len(result.keys) * len(result.targets):,}, failed {counts['failed']:,}")

    with Progress(render, progress_stream, enabled=show_progress):
        marker.start()
        _resync_all(plan, resyncer, marker, workers, result)
