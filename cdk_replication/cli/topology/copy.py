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

Resumable: after each page, each segment's position is saved in the join state file.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.cli.errors import WorkFailed, error_code, error_message
from cdk_replication.cli.outcomes import FAILED, KEPT
from cdk_replication.cli.redrive.multi_active import MultiActiveResync, send_current_state
from cdk_replication.cli.state import StateFile
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.topology.published import location_id

#: Kept and failed keys listed per region at most (the counts always hold the true number).
MAX_LISTED = 100
DONE = "done"


@dataclass
class RegionCopy:
    """Progress of one region's copy, shared by its segment threads.

    Attributes:
        counts: outcomes (``repaired`` = written, ``settled`` = already there, ``kept`` = the new region holds
            a state that orders after it, ``failed``), plus ``scanned``.
        listed: ``(key, outcome, reason)`` of kept (with a reason) and failed keys, at most :data:`MAX_LISTED`.
    """

    counts: Counter[str] = field(default_factory=Counter)
    listed: list[tuple[dict[str, Any], str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: dict[str, Any], outcome: str, reason: str | None) -> None:
        with self.lock:
            self.counts[outcome] += 1
            self.counts["scanned"] += 1
            if outcome in (FAILED, KEPT) and reason and len(self.listed) < MAX_LISTED:
                self.listed.append((key, outcome, reason))


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
    with ThreadPoolExecutor(workers, thread_name_prefix="join-write") as writers, \
            ThreadPoolExecutor(segments, thread_name_prefix="join-scan") as scans:
        futures = [scans.submit(_segment, source, target, resync, state, entry, s, segments, writers, stop, progress)
                   for s in range(segments)]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            stop.set()  # the pages in flight finish and are saved; then Ctrl-C goes on up
            raise
        except Exception as exc:
            stop.set()
            raise WorkFailed(f"copy from {source.info.label()} failed: "
                             f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}") from exc
    done = all(entry["segments"].get(str(s)) == DONE for s in range(segments))
    with state.lock:
        entry["done"] = done
        state.save()
    return done


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
        with state.lock:
            entry["segments"][str(seg)] = start
            state.save()
