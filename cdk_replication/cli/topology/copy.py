"""The multi-active copy of ``join``: every item of one existing region sent to the new region as that region's
replicator would send it (:func:`~cdk_replication.cli.redrive.multi_active.send_current_state`, the procedure
``verify --repair --conflict-attribute`` and ``redrive`` use), tombstones included.

Why tombstones: a delete made in region A before A's replicator sent to the new region reached the new region
through no record; if region B still holds the item (A's delete not applied there yet) B's copy would bring it
back, for good, unless A's tombstone is sent too. Why every region: a write made in B before B's replicator
sent to the new region may not have reached A yet when A is scanned.

Each write carries a fresh marker matching its content (the new region's replicator takes it for an echo and
does not send it back), keeps the item's origin, and wins or loses by the replicator's full order, so a newer
state the new region already received is never overwritten. The scan is strongly consistent: an eventually
consistent page could miss a write made just before the replicator started sending to the new region.

Resumable: after each page, each segment's position is saved in the join state file, with the run's counts and
every key that failed (with its reason). A re-run first sends the failed keys again, then continues the scans;
the region's copy is done only once every segment is scanned AND no key is left failed (rule 6: a failed key is
reported on every run until it is copied, never forgotten because its page was passed).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.cli.errors import WorkFailed, error_code, error_message
from cdk_replication.cli.items import from_json_item, to_json_item
from cdk_replication.cli.outcomes import FAILED, KEPT
from cdk_replication.cli.redrive.multi_active import MultiActiveResync, send_current_state
from cdk_replication.cli.state import StateFile
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.topology.published import location_id

#: Kept and failed keys listed per region at most (the counts always hold the true number).
MAX_LISTED = 100
#: Failed keys saved per region at most; beyond, the region is scanned again from the start on the next run
#: (sending a key again is harmless: an equal state is ``settled``), so no failure is ever dropped.
MAX_SAVED_FAILED = 10_000
DONE = "done"


@dataclass
class RegionCopy:
    """Progress of one region's copy, shared by its segment threads, carried across runs in the state file.

    Attributes:
        counts: outcomes over every run (``repaired`` = written, ``settled`` = already there, ``kept`` = the new
            region holds a state that orders after it), plus ``scanned``; ``failed`` is the number of keys
            failed and not copied since.
        failed: ``key (canonical JSON) -> reason`` of the failed keys not copied since, at most
            :data:`MAX_SAVED_FAILED`.
        overflow: more keys failed than ``failed`` holds: the next run scans the region again.
        kept: ``(key, reason)`` of this run's kept keys with a reason, at most :data:`MAX_LISTED`.
    """

    counts: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    overflow: bool = False
    kept: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, entry: dict[str, Any]) -> None:
        """Continue from a region's saved entry (the caller holds the state's lock)."""
        self.counts = Counter(entry.get("counts", {}))
        self.failed = dict(entry.get("failed", {}))
        self.overflow = bool(entry.get("overflow"))

    def save_into(self, entry: dict[str, Any]) -> None:
        """Copy the progress into the region's entry (the caller holds the state's lock; it saves)."""
        with self.lock:
            entry.update(counts=dict(self.counts), failed=dict(self.failed), overflow=self.overflow)

    def record(self, key: dict[str, Any], outcome: str, reason: str | None, *, scanned: bool = True) -> None:
        """Count one key's outcome; a failed key is saved, a key that failed before and is now sent is not."""
        name = json.dumps(to_json_item(key), sort_keys=True)
        with self.lock:
            self.counts["scanned"] += scanned
            if outcome == FAILED:
                if name not in self.failed:
                    self.counts["failed"] += 1
                    if len(self.failed) >= MAX_SAVED_FAILED:
                        self.overflow = True
                        return
                self.failed[name] = reason or "failed"
                return
            if self.failed.pop(name, None) is not None:
                self.counts["failed"] -= 1
            self.counts[outcome] += 1
            if outcome == KEPT and reason and len(self.kept) < MAX_LISTED:
                self.kept.append((key, reason))

    def listed(self) -> list[tuple[dict[str, Any], str, str]]:
        """``(key, outcome, reason)`` of the failed keys (every run's, first) and this run's kept ones, at most
        :data:`MAX_LISTED`."""
        with self.lock:
            failed = [(from_json_item(json.loads(k)), FAILED, r) for k, r in self.failed.items()]
            return (failed + [(k, KEPT, r) for k, r in self.kept])[:MAX_LISTED]

    def done(self) -> bool:
        """No key left failed (saved or beyond the saved ones)."""
        with self.lock:
            return not self.failed and not self.overflow and not self.counts["failed"]


def copy_region(source: TableHandle, target: TableHandle, resync: MultiActiveResync, state: StateFile,
                *, segments: int, workers: int, stop: threading.Event, progress: RegionCopy) -> bool:
    """Send every item (and tombstone) of ``source`` to ``target``; returns ``True`` when every segment is done
    (``False``: stopped by ``stop``, resume later). Positions are saved under ``state.data["copy"][source ARN]``.

    Raises:
        WorkFailed: a scan failed for a reason other than throttling (the state keeps the progress).
    """
    with state.lock:
        copies = state.data.setdefault("copy", {})
        entry = copies.setdefault(location_id(source.info), {"segments": {}, "done": False})
        # A resumed copy keeps the segment count its saved positions belong to, whatever --segments says now.
        segments = entry.setdefault("totalSegments", segments)
        if entry.get("overflow"):
            # More keys failed than were saved: scan everything again, so that none is passed over.
            entry.update(segments={}, failed={}, overflow=False, counts={**entry.get("counts", {}), FAILED: 0})
        progress.load(entry)
    with ThreadPoolExecutor(workers, thread_name_prefix="join-write") as writers, \
            ThreadPoolExecutor(segments, thread_name_prefix="join-scan") as scans:
        try:
            _retry_failed(source, target, resync, state, entry, writers, progress)
            futures = [scans.submit(_segment, source, target, resync, state, entry, s, segments, writers, stop,
                                    progress) for s in range(segments)]
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            stop.set()  # the pages in flight finish and are saved; then Ctrl-C goes on up
            raise
        except Exception as exc:
            stop.set()
            raise WorkFailed(f"copy from {source.info.label()} failed: "
                             f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}") from exc
    scanned = all(entry["segments"].get(str(s)) == DONE for s in range(segments))
    with state.lock:
        progress.save_into(entry)
        entry["done"] = done = scanned and progress.done()
        state.save()
    return done


def _retry_failed(source: TableHandle, target: TableHandle, resync: MultiActiveResync, state: StateFile,
                  entry: dict[str, Any], writers: ThreadPoolExecutor, progress: RegionCopy) -> None:
    """Send again the keys an earlier run failed (their pages were passed): each leaves the list once sent."""
    keys = [from_json_item(json.loads(k)) for k in list(progress.failed)]
    for key, (outcome, reason) in zip(keys, writers.map(
            lambda k: send_current_state(source, target, k, resync), keys)):
        progress.record(key, outcome, reason, scanned=False)
    with state.lock:
        progress.save_into(entry)
        state.save()


def _segment(source: TableHandle, target: TableHandle, resync: MultiActiveResync, state: StateFile,
             entry: dict[str, Any], seg: int, segments: int, writers: ThreadPoolExecutor, stop: threading.Event,
             progress: RegionCopy) -> None:
    """Scan one segment page by page; each page is sent (in parallel) before its position is saved."""
    start = entry["segments"].get(str(seg))
    names = source.info.key.names
    while start != DONE and not stop.is_set():
        request: dict[str, Any] = {"TableName": source.name, "Segment": seg, "TotalSegments": segments,
                                   "ConsistentRead": True}
        if start:
            request["ExclusiveStartKey"] = start
        page = resync.retrier.call(source.client.scan, **request)
        keys = [{n: item[n] for n in names} for item in page.get("Items", [])]
        for key, (outcome, reason) in zip(keys, writers.map(
                lambda k: send_current_state(source, target, k, resync), keys)):
            progress.record(key, outcome, reason)
        start = page.get("LastEvaluatedKey") or DONE
        with state.lock:  # the page's failed keys are saved with its position: a re-run sends them again
            entry["segments"][str(seg)] = start
            progress.save_into(entry)
            state.save()
