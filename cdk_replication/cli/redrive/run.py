"""A whole redrive, page by page: read a page of failure records, find their keys, resync each key once,
mark what is settled, then read the next page (memory holds one page of bodies; work starts at once).

A page is read and checked before its first write (a bad record ends the run with nothing of its page
written; pages before it are redriven and marked). Each key named by a page's records is resynced once per
page (however many of them name it), and a record is marked redriven as soon as every one of its keys is
settled in every target, so an interrupted run loses nothing: the next run skips what is marked.

A key named by records of several pages is resynced once in each: harmless, as every resync reads SOURCE's
current state (the second finds the first's write and settles). Multi-active needs no look across pages:
:func:`~cdk_replication.cli.redrive.multi_active.resync_multi_active` decides from the LAST record it is
given, so the page holding the key's last failed record decides exactly as a run that saw them all, and a
page with only earlier records sends at most what the replicator sent for one of them, or SOURCE's current
state placed at a lower bound of its stream place -- each written only if it orders after what the target
holds (compare-and-set on the full order), so whatever order the pages come in, nothing older wins.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

from cdk_replication.cli.items import Item, KeyId
from cdk_replication.cli.progress import Progress
from cdk_replication.cli.redrive.changes import KeyChange, changes_of
from cdk_replication.cli.redrive.failure_records import FailureRecord, NotAFailureRecord, parse_failure_record
from cdk_replication.cli.redrive.locations import Envelope, Location
from cdk_replication.cli.redrive.resync import SETTLED_OUTCOMES, KeyResyncer
from cdk_replication.cli.repair import KEPT, REPAIRED, SETTLED
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
    #: Records may remain that this run never read (an SQS run that stopped at its limit of held messages).
    stopped_early: bool = False
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
        return (not self.interrupted and not self.stopped_early and not self.lost and not self.unreadable
                and self.settled_records == self.records)


#: Seconds between two calls of the location's ``keep_alive`` while a page is resynced.
KEEP_ALIVE_S = 30.0


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


#: How telling an outcome is, for a key resynced in several pages: a failure shows over a success, a write
#: over a key found settled (the outcome a run that resynced the key once would have shown).
_RANK = {SETTLED: 0, KEPT: 1, REPAIRED: 2}


def _merge(old: tuple[str, str | None] | None, new: tuple[str, str | None]) -> tuple[str, str | None]:
    """The outcome a key and target show after ``new``, when an earlier page gave ``old``."""
    if old is None:
        return new
    return old if _RANK.get(old[0], len(_RANK)) > _RANK.get(new[0], len(_RANK)) else new


def _pages(location: Location) -> Iterator[list[Envelope]]:
    """The location's records, ``location.page_size`` at a time (read lazily: one page in memory)."""
    page: list[Envelope] = []
    for envelope in location.envelopes():
        page.append(envelope)
        if len(page) >= location.page_size:
            yield page
            page = []
    if page:
        yield page


def _plan(envelopes: list[Envelope], source: TableHandle, reader: RangeReader, result: RedriveResult) -> _Plan:
    """Read and check one page of records (raises :class:`BadInput` before any of its keys is written)."""
    plan = _Plan()
    for envelope in envelopes:
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
    result.records += len(plan.records)
    with result.lock:
        result.keys.update((key_id, changes[0].key) for key_id, changes in plan.changes.items())
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


def _resync_all(plan: _Plan, resyncer: KeyResyncer, marker: _Marker, workers: int, result: RedriveResult,
                keep_alive: Any) -> None:
    """Resync every key of a page in ``workers`` threads; records are marked as their keys finish;
    ``keep_alive()`` is called every :data:`KEEP_ALIVE_S` seconds meanwhile."""

    def one(key_id: KeyId) -> tuple[KeyId, list[tuple[str, str | None]]]:
        changes = plan.changes[key_id]
        outcomes = resyncer.resync(key_id, changes[0].key, [c.record for c in changes],
                                   kinesis=any(c.kinesis for c in changes))
        with result.lock:
            for target, outcome in zip(result.targets, outcomes):
                result.outcomes[(key_id, target)] = _merge(result.outcomes.get((key_id, target)), outcome)
        return key_id, outcomes

    pool = ThreadPoolExecutor(workers, thread_name_prefix="redrive")
    try:
        pending: set[Future[Any]] = {pool.submit(one, key_id) for key_id in plan.changes}
        while pending:
            done, pending = wait(pending, timeout=KEEP_ALIVE_S, return_when=FIRST_COMPLETED)
            keep_alive()
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
    def render() -> str:
        counts = result.counts
        settled = sum(n for outcome, n in counts.items() if outcome in SETTLED_OUTCOMES)
        read = result.records + len(result.skipped)
        return (f"redrive {source.info.label()}: {read:,}/{location.listed:,} records read (listed so far), "
                f"{len(result.keys):,} keys; resynced {settled:,}/{len(result.keys) * len(result.targets):,}, "
                f"failed {counts['failed']:,}, marked {result.redriven:,}")

    with Progress(render, progress_stream, enabled=show_progress):
        try:
            for envelopes in _pages(location):
                plan = _plan(envelopes, source, reader, result)
                marker = _Marker(location, plan, result)
                marker.start()
                _resync_all(plan, resyncer, marker, workers, result, location.keep_alive)
                if result.interrupted:
                    break
        finally:
            result.already_redriven = location.already_redriven
            result.stopped_early = getattr(location, "stopped_early", False)
            result.notes += getattr(location, "notes", [])
