"""``backfill``: copy every item of a source table into a target with writes that never overwrite newer data.

Each of ``segments`` threads scans one segment of a parallel Scan; the items of a page are written by a
shared pool of ``workers`` threads with a conditional PutItem. Before writing a page, one BatchGetItem per
100 keys asks the target which of them it already holds (with their conflict values): those are skipped
without a write, which makes a resumed or repeated run cheap (a refused conditional write still costs write
capacity). The check is only a shortcut: the conditional write stays the guarantee. A segment's LastEvaluatedKey is saved in the
state file only after every item of its page was written, so a resumed run repeats at most one page per
segment, and repeating is harmless because the writes are conditional.

One-way, the replicator may apply a delete between the scan and the write: ``attribute_not_exists`` cannot
see it (the target holds no item either way), so the write would bring the deleted item back for good. Each
item the backfill tried to write is therefore read again from the source (strongly consistent) after the
write: unchanged, the write stands (the replicator applies every later change after it); changed or gone,
the key goes through ``verify --repair``'s procedure (:class:`~cdk_replication.cli.repair.Repairer`). The keys
of a page are saved in the state file before its writes, so a resumed run checks them even after a crash
between a write and its check (the repeated scan no longer returns a deleted item); ``--restart`` carries
them into the new state file and checks them before it scans. docs/cli.md states the argument; multi-active
backfills need no check (tombstones and last-writer-wins guard them).

Counts hold each item once, in this run and over the runs a resume continues: an item decided again (its
page repeated after an interruption or an error, or its key re-checked on resume) keeps the outcome it is
counted under unless the new one says more than "already in the target" (:func:`_merge`).

A transformed replica (:mod:`cdk_replication.cli.transforms`, ``BackfillOptions.view``) receives what the
replicator writes: each item transformed, at TARGET's key for it; items the filter leaves out are not written
(``filtered``). The one-way check compares the transformed current source with what was written, and its
repair writes the transformed state.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.conditions import LastWriterWins, MissingConflictValue, absent
from cdk_replication.cli.errors import BadInput, WorkFailed, error_code, error_message
from cdk_replication.cli.items import Item, KeyId, from_json_item, item_digest, key_text, to_json_item
from cdk_replication.cli.options import DEFAULT_METADATA_PREFIX, DEFAULT_SEGMENTS, DEFAULT_WORKERS, VerifyOptions
from cdk_replication.cli.pacing import BACKOFF_BASE_S, BACKOFF_CAP_S, DEFAULT_MAX_ATTEMPTS, Retrier, TokenBucket
from cdk_replication.cli.progress import Progress, Rate
from cdk_replication.cli.repair import FAILED as REPAIR_FAILED
from cdk_replication.cli.repair import REPAIRED, UNSETTLED, Repairer
from cdk_replication.cli.state import StateFile, pair_state_path
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.transforms import IDENTITY, ReplicaView

#: Failed items kept (with key and reason) for the report; all are counted, and the report says when the list
#: is cut short.
MAX_REPORTED_FAILURES = 1000
#: Keys per BatchGetItem request (DynamoDB's maximum).
BATCH_GET_KEYS = 100


class Outcome(Enum):
    """What happened to one scanned item."""

    COPIED = "copied"
    SKIPPED = "skipped"  # the target already held the item (or, with last-writer-wins, a newer one)
    # One-way: written, but the source changed (or lost the item) before the write was confirmed, so the
    # target was brought to the source's current state (for example the copy of a deleted item removed).
    RESYNCED = "resynced"
    FAILED = "failed"
    # The replica's transform filters the item out: the replica does not hold it, so nothing is written.
    FILTERED = "filtered"
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
        state_path: the state file; default
            ``.cdk-replication/backfill-<source-region>-<source>-to-<target-region>-<target>.json``.
        restart: ignore (delete) an existing state file instead of resuming from it; default ``False``.
        metadata_prefix: the replicator's metadata prefix, default ``_rep_``: the one-way check's repair
            ignores these attributes when it compares, keeps a Kinesis-fed replica's change time and takes
            ``<prefix>deleted`` items for tombstones, as ``verify --repair`` does.
        view: how TARGET holds SOURCE's items; default as they are. With a transform, each item is written
            transformed (never as it is), items the filter leaves out are not written (``filtered``), and the
            one-way check compares the transformed source with what was written.
    """

    segments: int = DEFAULT_SEGMENTS
    workers: int = DEFAULT_WORKERS
    rate: float | None = None
    page_size: int | None = None
    conflict: LastWriterWins | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    state_path: Path | None = None
    restart: bool = False
    metadata_prefix: str = DEFAULT_METADATA_PREFIX
    view: ReplicaView = IDENTITY


#: Names of the counts, in report order (``scanned`` counts every item once, the rest split it by outcome).
COUNT_NAMES = ("scanned", "copied", "skipped", "resynced", "failed", "filtered")


#: State-file fields that name the tables: a file whose values differ belongs to another backfill.
TABLE_FIELDS = ("command", "source", "sourceRegion", "target", "targetRegion")

#: A decided item: its outcome, and for ``FAILED`` the reason.
Decision = tuple[Outcome, "str | None"]


def _zero_counts() -> dict[str, int]:
    return {name: 0 for name in COUNT_NAMES}


def _merge(counts: dict[str, int], seen: dict[str, str], name: str, outcome: Outcome,
           fallback: dict[str, str] | None = None) -> str:
    """Count ``outcome`` for the item ``name`` so that every item is counted once; returns its outcome after.

    ``seen`` (then ``fallback``) maps the items already in ``counts`` to the outcome they are counted under.
    An item decided again keeps that outcome when the new one is ``SKIPPED`` (a repeat found the earlier
    copy in TARGET: the copy stays a copy) and moves to the new one otherwise (e.g. copied, then resynced).

    Args:
        counts: the counts to update (``scanned`` and one per outcome).
        seen: outcomes of the items of the page (or set of keys) being counted; updated.
        fallback: outcomes counted elsewhere that may be met again (keys re-checked before the scan).
    """
    holder = seen if name in seen or fallback is None or name not in fallback else fallback
    before = holder.get(name)
    if before is None:
        counts["scanned"] += 1
    elif outcome is Outcome.SKIPPED or before == outcome.value:
        return before
    else:
        counts[before] -= 1
    counts[outcome.value] += 1
    holder[name] = outcome.value
    return outcome.value


@dataclass
class BackfillResult:
    """The outcome of :func:`run_backfill`.

    Attributes:
        counts: this run's counts.
        totals: counts over this run and the interrupted runs it resumed; an item whose page was repeated
            (or whose key was re-checked) is counted once, with its outcome in the run that decided it (a copy
            stays a copy when the repeat finds it in the target; a copy taken back by the check is resynced).
        failures: up to 1000 ``(key, reason)`` pairs of items whose final outcome in this run is ``failed``,
            each once; ``counts["failed"]`` is the true number.
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
    #: The run applied a replica transform (``filtered`` is then reported).
    transformed: bool = False

    @property
    def failures_truncated(self) -> bool:
        """True when more items failed than :attr:`failures` lists."""
        return self.counts["failed"] > len(self.failures)

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
            # The list is capped; these say so with the true number, so a script never mistakes it for all.
            "failuresListed": len(self.failures),
            "failuresTotal": self.counts["failed"],
            "failuresTruncated": self.failures_truncated,
        }


def state_path_for(source: TableHandle, target: TableHandle, options: BackfillOptions) -> Path:
    """``options.state_path``, or :func:`~cdk_replication.cli.state.pair_state_path`'s file of both tables."""
    return options.state_path or pair_state_path(
        "backfill", source.info.region, source.info.ref.name, target.info.region, target.info.ref.name
    )


class _Backfill:
    def __init__(self, source: TableHandle, target: TableHandle, options: BackfillOptions, stop: threading.Event):
        self.source = source
        self.target = target
        self.options = options
        self.stop = stop
        #: This run's counts, each item once (:func:`_merge`); guarded by ``state.lock``.
        self.counts = _zero_counts()
        #: This run's failed items by key, in the order they failed: an item whose final outcome is not
        #: ``FAILED`` leaves it, so the list always agrees with ``counts["failed"]`` (up to the cap).
        self.failures: dict[KeyId, tuple[Item, str]] = {}
        #: Per segment, the outcome this run counted for each item of the current page.
        self.run_seen: dict[int, dict[str, str]] = {}
        #: Outcomes this run counted for keys re-checked before the scan (``--restart``), until it ends.
        self.run_rechecked: dict[str, str] = {}
        self.retrier = Retrier(options.max_attempts)
        # One bucket for every write to TARGET: copies and the check's repairs (--rate).
        self.bucket = TokenBucket(options.rate)
        self.key = source.info.key
        self._repairer: Repairer | None = None
        self.state = StateFile(
            state_path_for(source, target, options),
            {
                "command": "backfill",
                "source": source.info.arn,
                "sourceRegion": source.info.region,
                "target": target.info.arn,
                "targetRegion": target.info.region,
                "totalSegments": options.segments,
                # A resume in the other mode would skip (or start) the one-way check: refused instead.
                "mode": _mode(options.conflict),
                # A resume under another transform would leave items of both in TARGET: refused instead.
                **({} if options.view.identity else {"transform": options.view.digest}),
            },
        )

    @property
    def checks_writes(self) -> bool:
        """One-way backfills confirm each write against the source (module docstring); multi-active ones
        are guarded by tombstones and last-writer-wins instead."""
        return self.options.conflict is None

    def repairer(self) -> Repairer:
        """``verify --repair``'s one-way procedure with this run's retries, metadata prefix and rate bucket.

        One-way even in a multi-active run: it only re-checks keys a one-way run wrote without checking."""
        if self._repairer is None:
            options = VerifyOptions(
                rate=self.options.rate,
                metadata_prefix=self.options.metadata_prefix,
                repair=True,
                max_attempts=self.options.max_attempts,
            )
            self._repairer = Repairer(self.source, self.target, options, self.retrier, bucket=self.bucket,
                                      view=self.options.view)
        return self._repairer

    def open_state(self) -> dict[str, Any]:
        """Resume the state file, start a new one, or refuse; returns its document (not saved yet).

        A file about to be abandoned (``--restart``) may hold keys a crashed one-way run wrote without
        checking them against the source: they move into the new document's ``unchecked`` list, which the
        run checks before it scans, so neither a restart nor a crash during one can lose them. A file of
        other options is refused with the way to go on that keeps them (``--restart``).
        """
        path = self.state.path
        previous = self._read_previous()
        if previous is None:
            return self.state.start()
        leftovers = _unchecked_keys(previous)
        differing = self.state.differing(previous)
        if "mode" not in previous and (self.checks_writes or not leftovers):
            # Files of the first version of the check do not record the mode. Resumable, except by a
            # multi-active run while they hold keys that need the one-way repair (see the --restart case).
            differing.remove("mode")
        if leftovers and any(name in TABLE_FIELDS for name in differing):
            raise BadInput(
                f"state file {path} belongs to the backfill {previous.get('source')} -> {previous.get('target')} "
                f"and holds {len(leftovers):,} keys it wrote without checking them against its source: resume that "
                "backfill (or --restart it) to check them, and give this one another --state-file"
            )
        if differing and not self.options.restart:
            name = differing[0]
            if name in TABLE_FIELDS:
                raise BadInput(
                    f"state file {path} belongs to another run ({name} is {previous.get(name)!r}, this run has "
                    f"{self.state.identity[name]!r}): pass another --state-file, or --restart to start over"
                )
            kept = f"; it first checks the {len(leftovers):,} keys that run left unchecked" if leftovers else ""
            raise BadInput(
                f"state file {path} belongs to another run ({_describe(name, previous.get(name))}, this run has "
                f"{_describe(name, self.state.identity[name])}): run with the same options to resume it, or add "
                f"--restart to start over{kept}"
            )
        if self.options.restart:
            if leftovers and not self.checks_writes:
                # The keys need the one-way repair, which may overwrite or delete TARGET's item: wrong on a
                # multi-active pair, so it is not done in a multi-active run.
                raise BadInput(
                    f"state file {path} holds {len(leftovers):,} keys a one-way backfill wrote without checking "
                    "them against the source: resume it as it was started (one-way, without --restart) to check "
                    "them, then start the multi-active one with --restart"
                )
            return self.state.start(unchecked=leftovers)
        previous.setdefault("mode", self.state.identity["mode"])
        return self.state.adopt(previous)

    def _read_previous(self) -> dict[str, Any] | None:
        """The existing state file's document; ``None`` when there is none, or when ``--restart`` abandons one
        that cannot be read or has another version. Keys such a file held unchecked are not recoverable from it;
        ``verify`` after the backfill finds any difference they left."""
        try:
            return self.state.read()
        except BadInput:
            if not self.options.restart:
                raise
            return None

    def batch_get(self, handle: TableHandle, keys: list[Item], *, names: list[str] | None = None,
                  consistent: bool = False) -> tuple[dict[KeyId, Item], list[Item]]:
        """Read ``keys`` from ``handle`` with BatchGetItem (100 per request).

        Args:
            names: attributes to read; ``None`` (default) reads whole items.
            consistent: strongly consistent reads; default eventually consistent.

        Returns:
            the items found by key, and the keys still unprocessed after ``max_attempts`` rounds of backoff
            (DynamoDB's way of throttling a batch).
        """
        found: dict[KeyId, Item] = {}
        given_up: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending = keys[start : start + BATCH_GET_KEYS]
            attempt = 0
            while pending:
                request: dict[str, Any] = {"Keys": pending}
                if names is not None:
                    placeholders = {f"#k{i}": name for i, name in enumerate(names)}
                    request["ProjectionExpression"] = ", ".join(placeholders)
                    request["ExpressionAttributeNames"] = placeholders
                if consistent:
                    request["ConsistentRead"] = True
                response = self.retrier.call(handle.client.batch_get_item, RequestItems={handle.name: request})
                for held in itertools.chain.from_iterable(response.get("Responses", {}).values()):
                    found[self.key.key_id(held)] = held
                unprocessed = response.get("UnprocessedKeys") or {}
                pending = [k for table in unprocessed.values() for k in table["Keys"]]
                if pending:
                    attempt += 1
                    if attempt >= self.retrier.max_attempts:
                        given_up.extend(pending)
                        break
                    time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
        return found, given_up

    def existing(self, items: list[Item]) -> dict[KeyId, Item]:
        """The target's current key (and conflict attribute) for those of ``items`` it already holds.

        Eventually consistent: an item written a moment ago may be missed, which only costs a refused write;
        keys left unprocessed are left to the conditional writes.
        """
        names = list(self.key.names)
        if self.options.conflict is not None:
            names.append(self.options.conflict.attribute)
        view = self.options.view
        found, _ = self.batch_get(self.target, [view.key(self.key.key_of(item)) for item in items], names=names)
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

    def copy_item(self, item: Item) -> Decision:
        """Write ``item`` to the target unless it holds it (or, multi-active, a newer or equal version)."""
        if self.stop.is_set():
            return Outcome.NOT_TRIED, None
        try:
            if self.options.conflict is not None:
                condition = self.options.conflict.newer_than_target(self.key.partition_key, item)
            else:
                condition = absent(self.key.partition_key)
        except MissingConflictValue as exc:
            return Outcome.FAILED, str(exc)
        # TARGET gets what the replicator writes: the transformed item, never the source's as it is.
        shaped = self.options.view.item(item)
        self.bucket.acquire()
        try:
            self.retrier.call(
                self.target.client.put_item, TableName=self.target.name, Item=shaped, **condition.request_args()
            )
        except Exception as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                return Outcome.SKIPPED, None
            if not code and not hasattr(exc, "response"):
                raise
            return Outcome.FAILED, f"{code}: {error_message(exc)}"
        return Outcome.COPIED, None

    def confirm(self, attempted: list[Item], decisions: dict[KeyId, Decision]) -> None:
        """One-way: read every item the page tried to write again from the source (strongly consistent) and
        resync the keys whose source no longer holds exactly what was written (docs/cli.md has the argument).

        Items that were skipped or failed are checked too: a write retried after a lost response can succeed
        and then be refused as "already there", and a failed one may have been applied.
        """
        tried = [item for item in attempted if decisions[self.key.key_id(item)][0] is not Outcome.NOT_TRIED]
        if not tried:
            return
        now, unread = self.batch_get(self.source, [self.key.key_of(item) for item in tried], consistent=True)
        unread_ids = {self.key.key_id(k) for k in unread}
        prefix = self.options.metadata_prefix  # ignored here as in every comparison (docs/architecture.md)
        view = self.options.view  # the transformed source is compared with what was written (the transformed scan)
        suspects = []
        for item in tried:
            key_id = self.key.key_id(item)
            if key_id in unread_ids or item_digest(view.item(now.get(key_id)), prefix) != item_digest(
                    view.item(item), prefix):
                suspects.append(key_id)
        for key_id in suspects:  # rare: only keys whose source changed since the scan
            decisions[key_id] = self.resync(key_id, decisions[key_id])

    def resync(self, key_id: KeyId, before: Decision) -> Decision:
        """Bring ``key_id`` to the source's current state; returns the item's decision after it."""
        try:
            result, reason = self.repairer().repair_one(key_id)
        except Exception as exc:  # reported per key: one bad item must not stop the rest
            result, reason = REPAIR_FAILED, f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
        if result == REPAIRED:
            return Outcome.RESYNCED, None
        if result in (UNSETTLED, REPAIR_FAILED):
            return Outcome.FAILED, (
                f"the source changed during the copy and the target could not be brought to its current state "
                f"({reason}); run `cdk-replication verify --repair`"
            )
        return before  # settled: the target already matched the source (the replicator got there first)

    def recheck_keys(self, keys: list[Item]) -> dict[KeyId, Decision]:
        """Resync ``keys``, written by a stopped run without being confirmed; settled ones count as skipped."""
        return {self.key.key_id(key): self.resync(self.key.key_id(key), (Outcome.SKIPPED, None)) for key in keys}

    def record(self, segment: int | None, decisions: dict[KeyId, Decision]) -> None:
        """Count decided items in this run's counts and in the run-spanning totals, each item once.

        Args:
            segment: the segment whose page (or re-checked keys) these are; ``None`` for the keys an
                abandoned state file left unchecked (``--restart``), which any segment may scan again.
        """
        with self.state.lock:
            data = self.state.data
            if segment is None:
                seen_total, fallback_total = data.setdefault("rechecked", {}), None
                seen_run, fallback_run = self.run_rechecked, None
            else:
                seen_total = data["segments"][str(segment)].setdefault("counted", {})
                fallback_total = data.get("rechecked")
                seen_run, fallback_run = self.run_seen.setdefault(segment, {}), self.run_rechecked
            for key_id, (outcome, reason) in decisions.items():
                if outcome is Outcome.NOT_TRIED:
                    continue
                name = _counted_id(self.key.key_from_id(key_id))
                _merge(data["totals"], seen_total, name, outcome, fallback_total)
                final = _merge(self.counts, seen_run, name, outcome, fallback_run)
                self._note_failure(key_id, final, reason)

    def _note_failure(self, key_id: KeyId, final: str, reason: str | None) -> None:
        """Keep :attr:`failures` in step with each item's final outcome in this run (caller holds the lock)."""
        if final != Outcome.FAILED.value:
            self.failures.pop(key_id, None)
        elif reason is not None and (key_id in self.failures or len(self.failures) < MAX_REPORTED_FAILURES):
            self.failures[key_id] = (self.key.key_from_id(key_id), reason)

    def save_segment(self, entry: dict[str, Any], **changes: Any) -> None:
        """Update a segment's entry in the state file and save it."""
        with self.state.lock:
            entry.update(changes)
            self.state.save()

    def recheck_leftovers(self) -> None:
        """Before the scan: check the keys an abandoned state file left unchecked (``--restart``)."""
        keys = [from_json_item(k) for k in self.state.data.get("unchecked") or []]
        if keys:
            self.record(None, self.recheck_keys(keys))
            with self.state.lock:
                self.state.data["unchecked"] = []
                self.state.save()

    def recheck(self, segment: int) -> None:
        """On resume: resync the keys a stopped run wrote (or was about to) without confirming them."""
        entry = self.state.data["segments"][str(segment)]
        keys = [from_json_item(k) for k in entry.get("unchecked") or []]
        if keys:
            self.record(segment, self.recheck_keys(keys))
            self.save_segment(entry, unchecked=[])

    def run_segment(self, segment: int, writers: ThreadPoolExecutor) -> None:
        entry = self.state.data["segments"][str(segment)]
        self.recheck(segment)  # only a one-way run leaves keys to check; the file's mode matches this run's
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
            decisions: dict[KeyId, Decision] = {}
            try:
                self.copy_page(entry, page.get("Items", []), writers, decisions)
            except BaseException:
                # Count what was decided before the error: the resumed run repeats the page and finds these
                # outcomes in the totals (a copy stays a copy). `unchecked` stays for its check.
                self.record(segment, decisions)
                self.save_segment(entry)
                raise
            self.record(segment, decisions)
            next_start = page.get("LastEvaluatedKey")
            if any(outcome is Outcome.NOT_TRIED for outcome, _ in decisions.values()):
                # Keep the previous resume point so the unwritten items are retried; `counted` remembers what
                # is already in the totals so the repeat does not count it again. Every tried write was checked.
                self.save_segment(entry, unchecked=[])
                return
            with self.state.lock:
                self.save_segment(
                    entry,
                    lastEvaluatedKey=to_json_item(next_start) if next_start else None,
                    done=next_start is None,
                    unchecked=[],
                    counted={},
                )
                self.run_seen[segment] = {}
            start = next_start
            if start is None:
                return

    def copy_page(self, entry: dict[str, Any], items: list[Item], writers: ThreadPoolExecutor,
                  decisions: dict[KeyId, Decision]) -> None:
        """Write one scanned page, filling ``decisions`` as items are decided (``NOT_TRIED`` when the run is
        stopping), so that the caller can count them even when this raises."""
        view = self.options.view
        decisions.update({self.key.key_id(i): (Outcome.FILTERED, None) for i in items if view.item(i) is None})
        items = [item for item in items if self.key.key_id(item) not in decisions]
        held = self.existing(items)  # by TARGET's key (hashed where the transform masks a key attribute)
        attempted = []
        for item in items:
            if self.skip_without_writing(item, held.get(self.key.key_id(view.key(self.key.key_of(item))))):
                decisions[self.key.key_id(item)] = (Outcome.SKIPPED, None)
            else:
                attempted.append(item)
        if attempted and self.checks_writes:
            # Write-ahead: should the run die between a write and its check, the resumed run finds these keys
            # here (its repeated scan no longer returns an item deleted meanwhile).
            self.save_segment(entry, unchecked=[to_json_item(self.key.key_of(item)) for item in attempted])
        futures = [(self.key.key_id(item), writers.submit(self.copy_item, item)) for item in attempted]
        error: BaseException | None = None
        for key_id, future in futures:  # every write of the page finishes before an error is raised
            try:
                decisions[key_id] = future.result()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        if self.checks_writes:
            self.confirm(attempted, decisions)


def _mode(conflict: LastWriterWins | None) -> str:
    """The state file's ``mode``: ``one-way``, or ``multi-active (<attribute>, <strategy>)``."""
    return "one-way" if conflict is None else f"multi-active ({conflict.attribute}, {conflict.strategy})"


def _describe(name: str, value: Any) -> str:
    """An identity field's value as the option that sets it, for messages."""
    if name == "totalSegments":
        return f"--segments {value}"
    if name == "mode":
        return f"a {value} backfill" if value else "no recorded mode"
    if name == "transform":
        return f"the replica transform {value}" if value else "no replica transform"
    return f"{name} {value!r}"


def _unchecked_keys(data: dict[str, Any]) -> list[Any]:
    """Every key (DynamoDB JSON) a state document still has to check, from any segment or an earlier restart."""
    keys = list(data.get("unchecked") or [])
    for entry in (data.get("segments") or {}).values():
        keys.extend(entry.get("unchecked") or [])
    unique = {json.dumps(k, sort_keys=True): k for k in keys}
    return list(unique.values())


def _counted_id(key: Item) -> str:
    """A key as the text the state file's ``counted`` map uses (DynamoDB JSON, sorted)."""
    return json.dumps(to_json_item(key), sort_keys=True)


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
    data = _prepare_state(job)
    started = time.monotonic()
    with Progress(_progress_line(job, data), progress_stream, enabled=show_progress):
        job.recheck_leftovers()
        interrupted, error = _run_segments(job)
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
    # `filtered` only when a transform applies: without one no item is ever filtered out.
    shown = [name for name in COUNT_NAMES if name != "filtered" or not options.view.identity]
    return BackfillResult(
        counts={name: job.counts[name] for name in shown},
        totals={name: data["totals"].get(name, 0) for name in shown},
        failures=list(job.failures.values()),
        retries=job.retrier.retries,
        seconds=time.monotonic() - started,
        complete=complete,
        interrupted=interrupted,
        resumed=job.state.resumed,
        state_path=job.state.path,
        transformed=not options.view.identity,
    )


def _prepare_state(job: _Backfill) -> dict[str, Any]:
    """Open (resume, start or refuse) the state file, fill in what a new one lacks, and save it at once, so
    an interrupted first page still leaves a trail; returns its document."""
    data = job.open_state()
    segments = job.options.segments
    data.setdefault("segments", {str(s): {"lastEvaluatedKey": None, "done": False} for s in range(segments)})
    totals = data.setdefault("totals", {})
    for name in COUNT_NAMES:
        totals.setdefault(name, 0)
    try:
        job.state.save()
    except OSError as exc:
        raise BadInput(
            f"cannot write the state file {job.state.path} ({exc.strerror or exc}): pass another --state-file"
        ) from None
    return data


def _progress_line(job: _Backfill, data: dict[str, Any]) -> Callable[[], str]:
    """The progress line's renderer: counts over the runs so far, segments done, and the rate."""
    source, target = job.source, job.target
    previously_scanned = data["totals"]["scanned"]
    rate = Rate(max(0, source.info.item_count - previously_scanned))
    label = f"backfill {source.info.label()} -> {target.info.label()}"

    def render() -> str:
        c = job.counts
        done = sum(1 for e in data["segments"].values() if e["done"])
        total = f"/~{source.info.item_count:,}" if source.info.item_count else ""
        resynced = f" resynced {c['resynced']:,}" if c["resynced"] else ""
        return (
            f"{label}: scanned {previously_scanned + c['scanned']:,}{total} copied {c['copied']:,} "
            f"skipped {c['skipped']:,}{resynced} failed {c['failed']:,} | "
            f"segments {done}/{job.options.segments} | "
            f"{rate.describe(c['scanned'])}"
        )

    return render


def _run_segments(job: _Backfill) -> tuple[bool, BaseException | None]:
    """Scan every segment on its own thread, writing through a shared pool, until all end, one fails, or
    Ctrl-C; returns ``(interrupted by Ctrl-C, the first segment's error or None)``."""
    options, stop = job.options, job.stop
    interrupted = False
    error: BaseException | None = None
    with ThreadPoolExecutor(options.workers, thread_name_prefix="write") as writers, ThreadPoolExecutor(
        options.segments, thread_name_prefix="scan"
    ) as scanners:
        futures: list[Future[None]] = [scanners.submit(job.run_segment, s, writers) for s in range(options.segments)]
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
    return interrupted, error


def _all_done(data: dict[str, Any]) -> bool:
    return all(entry["done"] for entry in data["segments"].values())


def format_failures(failures: list[tuple[Item, str]], total: int, limit: int = 20) -> list[str]:
    """Human lines for the first ``limit`` of ``failures``, then how many more failed in all.

    Args:
        failures: the listed failures (at most :data:`MAX_REPORTED_FAILURES`).
        total: how many items failed, which may be more than were listed.
        limit: lines of keys to print, default 20.
    """
    lines = [f"  {key_text(key)}: {reason}" for key, reason in failures[:limit]]
    shown = min(limit, len(failures))
    if total > shown:
        more = f"  ... and {total - shown:,} more"
        if total > len(failures):
            more += f" (--json lists the first {len(failures):,} of the {total:,})"
        else:
            more += " (--json lists them all)"
        lines.append(more)
    return lines


def backfill_text(result: BackfillResult) -> str:
    """The human report: this run's counts, the totals when it resumed earlier runs, the failed items."""
    c = result.counts
    text = (
        f"{'resumed and ' if result.resumed else ''}{'finished' if result.complete else 'stopped'}: "
        f"scanned {c['scanned']:,}, copied {c['copied']:,}, skipped (target had it) {c['skipped']:,}, "
        + (f"resynced (changed at the source during the copy) {c['resynced']:,}, " if c["resynced"] else "")
        + (f"left out by the replica's filter {c['filtered']:,}, " if result.transformed else "")
        + f"failed {c['failed']:,} in {result.seconds:.1f} s ({result.retries} throttling retries)\n"
    )
    if result.resumed:
        t = result.totals
        text += (
            f"including earlier runs: scanned {t['scanned']:,}, copied {t['copied']:,}, "
            f"skipped {t['skipped']:,}, "
            + (f"resynced {t['resynced']:,}, " if t["resynced"] else "")
            + f"failed {t['failed']:,}\n"
        )
    if c["failed"]:
        text += f"failed items ({c['failed']:,}):\n" + "\n".join(format_failures(result.failures, c["failed"])) + "\n"
    return text
