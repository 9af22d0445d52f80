"""``backfill``: copy every item of a source table into a target with writes that never overwrite newer data.

Each of ``segments`` threads scans one segment of a parallel Scan; the items of a page are written by a
shared pool of ``workers`` threads with a conditional PutItem. Before writing a page, one BatchGetItem per
100 keys asks the target which of them it already holds (with their conflict values): those are skipped
without a write, which makes a resumed or repeated run cheap (a refused conditional write still costs write
capacity). The check is only a shortcut: the conditional write stays the guarantee. A segment's LastEvaluatedKey is saved in the
state file only after every item of its page was written, so a resumed run repeats at most one page per
segment, and repeating is harmless because the writes are conditional.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.conditions import LastWriterWins, MissingConflictValue, absent
from cdk_replication.cli.errors import WorkFailed, error_code, error_message
from cdk_replication.cli.items import Item, KeyId, from_json_item, key_text, to_json_item
from cdk_replication.cli.pacing import BACKOFF_BASE_S, BACKOFF_CAP_S, DEFAULT_MAX_ATTEMPTS, Retrier, TokenBucket
from cdk_replication.cli.progress import Progress, Rate
from cdk_replication.cli.state import StateFile, default_state_path
from cdk_replication.cli.tables import TableHandle

#: Parallel scan segments when ``--segments`` is not given.
DEFAULT_SEGMENTS = 4
#: Write threads shared by all segments when ``--workers`` is not given.
DEFAULT_WORKERS = 16
#: Failed items kept (with key and reason) for the report; all are counted.
MAX_REPORTED_FAILURES = 1000
#: Keys per BatchGetItem request (DynamoDB's maximum).
BATCH_GET_KEYS = 100


class Outcome(Enum):
    """What happened to one scanned item."""

    COPIED = "copied"
    SKIPPED = "skipped"  # the target already held the item (or, with last-writer-wins, a newer one)
    FAILED = "failed"
    NOT_TRIED = "not-tried"  # the run was stopping; the page will be repeated on resume


@dataclass
class BackfillOptions:
    """Settings of one backfill run.

    Attributes:
        segments: parallel scan segments (``TotalSegments``), default 4; fixed for the life of a state file.
        workers: write threads shared by all segments, default 16.
        rate: items written per second over all threads; ``None`` (default) is unlimited.
        page_size: Scan ``Limit`` per page; ``None`` (default) lets DynamoDB fill 1 MB pages. Smaller pages
            mean finer-grained resume points.
        conflict: last-writer-wins ordering for multi-active tables; ``None`` (default) writes only items
            the target does not have.
        max_attempts: attempts per request before a throttling error counts as a failure, default 10.
        state_path: the state file; default ``.cdk-replication/backfill-<source>-<target>.json``.
        restart: ignore (delete) an existing state file instead of resuming from it; default ``False``.
    """

    segments: int = DEFAULT_SEGMENTS
    workers: int = DEFAULT_WORKERS
    rate: float | None = None
    page_size: int | None = None
    conflict: LastWriterWins | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    state_path: Path | None = None
    restart: bool = False


@dataclass
class Counts:
    """Item counts, safe to update from several threads."""

    scanned: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self.scanned += 1
            if outcome is Outcome.COPIED:
                self.copied += 1
            elif outcome is Outcome.SKIPPED:
                self.skipped += 1
            elif outcome is Outcome.FAILED:
                self.failed += 1

    def as_dict(self) -> dict[str, int]:
        return {"scanned": self.scanned, "copied": self.copied, "skipped": self.skipped, "failed": self.failed}


@dataclass
class BackfillResult:
    """The outcome of :func:`run_backfill`.

    Attributes:
        counts: this run's counts.
        totals: counts over this run and the interrupted runs it resumed.
        failures: up to 1000 ``(key, reason)`` pairs of items that could not be written.
        complete: every segment was scanned to its end (the state file was then removed).
        interrupted: the run stopped early (Ctrl-C or the ``stop`` event); the state file allows a resume.
        resumed: this run continued from an existing state file.
    """

    counts: dict[str, int]
    totals: dict[str, int]
    failures: list[tuple[Item, str]]
    retries: int
    seconds: float
    complete: bool
    interrupted: bool
    resumed: bool
    state_path: Path

    def as_json(self) -> dict[str, Any]:
        return {
            "command": "backfill",
            "complete": self.complete,
            "interrupted": self.interrupted,
            "resumed": self.resumed,
            "counts": self.counts,
            "totals": self.totals,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "stateFile": str(self.state_path),
            "failures": [{"key": to_json_item(k), "reason": r} for k, r in self.failures],
        }


def state_path_for(source: TableHandle, target: TableHandle, options: BackfillOptions) -> Path:
    """``options.state_path``, or ``.cdk-replication/backfill-<region>-<source>-to-<region>-<target>.json``."""
    return options.state_path or default_state_path(
        "backfill", source.info.region, source.info.ref.name, "to", target.info.region, target.info.ref.name
    )


class _Backfill:
    def __init__(self, source: TableHandle, target: TableHandle, options: BackfillOptions, stop: threading.Event):
        self.source = source
        self.target = target
        self.options = options
        self.stop = stop
        self.counts = Counts()
        self.failures: list[tuple[Item, str]] = []
        self.retrier = Retrier(options.max_attempts)
        self.bucket = TokenBucket(options.rate)
        self.key = source.info.key
        self._failure_lock = threading.Lock()
        self.state = StateFile(
            state_path_for(source, target, options),
            {
                "command": "backfill",
                "source": source.info.arn,
                "sourceRegion": source.info.region,
                "target": target.info.arn,
                "targetRegion": target.info.region,
                "totalSegments": options.segments,
            },
        )

    def existing(self, items: list[Item]) -> dict[KeyId, Item]:
        """The target's current key (and conflict attribute) for those of ``items`` it already holds.

        Eventually consistent: an item written a moment ago may be missed, which only costs a refused write.
        """
        key = self.key
        names = {f"#k{i}": name for i, name in enumerate(key.names)}
        if self.options.conflict is not None:
            names["#cv"] = self.options.conflict.attribute
        found: dict[KeyId, Item] = {}
        for start in range(0, len(items), BATCH_GET_KEYS):
            pending = [key.key_of(item) for item in items[start : start + BATCH_GET_KEYS]]
            attempt = 0
            while pending:
                request = {
                    self.target.name: {
                        "Keys": pending,
                        "ProjectionExpression": ", ".join(names),
                        "ExpressionAttributeNames": names,
                    }
                }
                response = self.retrier.call(self.target.client.batch_get_item, RequestItems=request)
                for held in itertools.chain.from_iterable(response.get("Responses", {}).values()):
                    found[key.key_id(held)] = held
                unprocessed = response.get("UnprocessedKeys") or {}
                pending = [k for table in unprocessed.values() for k in table["Keys"]]
                if pending:
                    # Unprocessed keys are DynamoDB's way of throttling a batch: back off like any throttle,
                    # and past the attempt limit leave the rest to the conditional writes.
                    attempt += 1
                    if attempt >= self.retrier.max_attempts:
                        break
                    time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
        return found

    def skip_without_writing(self, item: Item, held: Item | None) -> bool:
        """True when the target's ``held`` item already wins over ``item`` by the write condition's rule."""
        if held is None:
            return False
        conflict = self.options.conflict
        if conflict is None:
            return True
        try:
            source_value = Decimal(conflict.value_of(item)["N"])
        except MissingConflictValue:
            return False  # let copy_item report it
        target_value = held.get(conflict.attribute, {}).get("N")
        return target_value is not None and Decimal(target_value) >= source_value

    def copy_item(self, item: Item, held: Item | None = None) -> Outcome:
        if self.stop.is_set():
            return Outcome.NOT_TRIED
        if self.skip_without_writing(item, held):
            return Outcome.SKIPPED
        try:
            if self.options.conflict is not None:
                condition = self.options.conflict.newer_than_target(self.key.partition_key, item)
            else:
                condition = absent(self.key.partition_key)
        except MissingConflictValue as exc:
            return self._failed(item, str(exc))
        self.bucket.acquire()
        try:
            self.retrier.call(
                self.target.client.put_item, TableName=self.target.name, Item=item, **condition.request_args()
            )
        except Exception as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                return Outcome.SKIPPED
            if not code and not hasattr(exc, "response"):
                raise
            return self._failed(item, f"{code}: {error_message(exc)}")
        return Outcome.COPIED

    def _failed(self, item: Item, reason: str) -> Outcome:
        with self._failure_lock:
            if len(self.failures) < MAX_REPORTED_FAILURES:
                self.failures.append((self.key.key_of(item), reason))
        return Outcome.FAILED

    def run_segment(self, segment: int, writers: ThreadPoolExecutor) -> None:
        entry = self.state.data["segments"][str(segment)]
        if entry["done"]:
            return
        start = from_json_item(entry["lastEvaluatedKey"]) if entry["lastEvaluatedKey"] else None
        while not self.stop.is_set():
            request: dict[str, Any] = {
                "TableName": self.source.name,
                "Segment": segment,
                "TotalSegments": self.options.segments,
            }
            if self.options.page_size:
                request["Limit"] = self.options.page_size
            if start:
                request["ExclusiveStartKey"] = start
            page = self.retrier.call(self.source.client.scan, **request)
            items = page.get("Items", [])
            held = self.existing(items)
            outcomes = list(writers.map(lambda it: self.copy_item(it, held.get(self.key.key_id(it))), items))
            for outcome in outcomes:
                if outcome is not Outcome.NOT_TRIED:
                    self.counts.add(outcome)
            if Outcome.NOT_TRIED in outcomes:
                return  # stopping: keep the previous resume point so the unwritten items are retried
            start = page.get("LastEvaluatedKey")
            with self.state.lock:
                entry["lastEvaluatedKey"] = to_json_item(start) if start else None
                entry["done"] = start is None
                totals = self.state.data["totals"]
                for name, value in _count_delta(outcomes).items():
                    totals[name] += value
                self.state.save()
            if start is None:
                return


def _count_delta(outcomes: list[Outcome]) -> dict[str, int]:
    return {
        "scanned": len(outcomes),
        "copied": outcomes.count(Outcome.COPIED),
        "skipped": outcomes.count(Outcome.SKIPPED),
        "failed": outcomes.count(Outcome.FAILED),
    }


def run_backfill(
    source: TableHandle,
    target: TableHandle,
    options: BackfillOptions,
    *,
    stop: threading.Event | None = None,
    progress_stream: TextIO | None = None,
    show_progress: bool = True,
) -> BackfillResult:
    """Copy ``source`` into ``target`` (both already checked, see :mod:`cdk_replication.cli.commands`).

    Args:
        stop: set it to stop after the pages in flight; Ctrl-C does the same. Default: a private event.
        progress_stream: where progress goes; default stderr.
        show_progress: ``False`` draws no progress.

    Raises:
        WorkFailed: a scan failed for a reason other than throttling; the state file keeps the progress.
    """
    if options.segments < 1 or options.workers < 1:
        raise ValueError(f"segments and workers must be at least 1, got {options.segments}/{options.workers}")
    stop = stop or threading.Event()
    job = _Backfill(source, target, options, stop)
    if options.restart:
        job.state.delete()
    data = job.state.load()
    data.setdefault("segments", {str(s): {"lastEvaluatedKey": None, "done": False} for s in range(options.segments)})
    data.setdefault("totals", {"scanned": 0, "copied": 0, "skipped": 0, "failed": 0})
    previously_scanned = data["totals"]["scanned"]
    job.state.save()  # the file exists from the start, so an interrupted first page still leaves a trail

    rate = Rate(max(0, source.info.item_count - previously_scanned))
    label = f"backfill {source.info.label()} -> {target.info.label()}"

    def render() -> str:
        c = job.counts
        done = sum(1 for e in data["segments"].values() if e["done"])
        total = f"/~{source.info.item_count:,}" if source.info.item_count else ""
        return (
            f"{label}: scanned {previously_scanned + c.scanned:,}{total} copied {c.copied:,} "
            f"skipped {c.skipped:,} failed {c.failed:,} | segments {done}/{options.segments} | "
            f"{rate.describe(c.scanned)}"
        )

    started = time.monotonic()
    interrupted = False
    error: BaseException | None = None
    with Progress(render, progress_stream, enabled=show_progress):
        with ThreadPoolExecutor(options.workers, thread_name_prefix="write") as writers, ThreadPoolExecutor(
            options.segments, thread_name_prefix="scan"
        ) as scanners:
            futures: list[Future[None]] = [
                scanners.submit(job.run_segment, s, writers) for s in range(options.segments)
            ]
            pending = set(futures)
            try:
                while pending:
                    # A short timeout keeps the main thread responsive to Ctrl-C.
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                    for f in done:
                        if f.exception() is not None and error is None:
                            error = f.exception()
                            stop.set()
            except KeyboardInterrupt:
                stop.set()
                interrupted = True
                wait(pending)
    interrupted = interrupted or (stop.is_set() and error is None and not _all_done(data))
    complete = _all_done(data)
    if error is not None:
        raise WorkFailed(
            f"backfill {source.info.label()} -> {target.info.label()} stopped: "
            f"{error_code(error) or type(error).__name__}: {error_message(error)}; progress is saved in "
            f"{job.state.path}, re-run to resume"
        ) from error
    if complete:
        job.state.delete()
    return BackfillResult(
        counts=job.counts.as_dict(),
        totals=dict(data["totals"]),
        failures=job.failures,
        retries=job.retrier.retries,
        seconds=time.monotonic() - started,
        complete=complete,
        interrupted=interrupted,
        resumed=job.state.resumed,
        state_path=job.state.path,
    )


def _all_done(data: dict[str, Any]) -> bool:
    return all(entry["done"] for entry in data["segments"].values())


def format_failures(failures: list[tuple[Item, str]], limit: int = 20) -> list[str]:
    """Human lines for the first ``limit`` failures."""
    lines = [f"  {key_text(key)}: {reason}" for key, reason in failures[:limit]]
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more (use --json for all)")
    return lines
